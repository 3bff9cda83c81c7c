// websocket-integration.test.js
const WebSocket = require('ws');
const jwt = require('jsonwebtoken');

describe('WebSocket Integration', () => {
  let ws;
  let authToken;

  beforeAll(() => {
    // Create test JWT token
    authToken = jwt.sign(
      { user_id: 'test-user', roles: ['user'] },
      'your-secret-key',
      { expiresIn: '1h' }
    );
  });

  beforeEach((done) => {
    ws = new WebSocket(`ws://localhost:8080/ws?token=${authToken}`);
    ws.on('open', done);
  });

  afterEach(() => {
    if (ws.readyState === WebSocket.OPEN) {
      ws.close();
    }
  });

  test('should authenticate successfully', (done) => {
    ws.on('message', (data) => {
      const message = JSON.parse(data);
      if (message.type === 'Custom' && message.data.action === 'auth_success') {
        expect(message.data.authenticated).toBe(true);
        done();
      }
    });

    ws.send(JSON.stringify({
      type: 'Auth',
      data: { token: authToken }
    }));
  });

  test('should subscribe to channel', (done) => {
    ws.on('message', (data) => {
      const message = JSON.parse(data);
      if (message.type === 'Custom' && message.data.action === 'subscribed') {
        expect(message.data.channel).toBe('test-channel');
        done();
      }
    });

    ws.send(JSON.stringify({
      type: 'Subscribe',
      data: { channel: 'test-channel' }
    }));
  });

  test('should receive broadcast messages', (done) => {
    // First subscribe to channel
    ws.send(JSON.stringify({
      type: 'Subscribe',
      data: { channel: 'test-broadcast' }
    }));

    // Then send broadcast
    setTimeout(() => {
      ws.send(JSON.stringify({
        type: 'Broadcast',
        data: {
          channel: 'test-broadcast',
          message: { text: 'Hello World!' }
        }
      }));
    }, 100);

    ws.on('message', (data) => {
      const message = JSON.parse(data);
      if (message.type === 'Custom' && message.data.action === 'broadcast') {
        expect(message.data.payload.message.text).toBe('Hello World!');
        done();
      }
    });
  });
});
