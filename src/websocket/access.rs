//! Who may use a channel: the checks of its policy behind Subscribe and a client's Broadcast,
//! answered as the `ProtocolError` the client is sent, and the token bucket behind a
//! channel's rate limit (one per connection and channel).

use super::auth::Identity;
use super::protocol::ProtocolError;
use crate::routing::channels::{ChannelPolicy, RatePolicy};

/// Whether a connection of `identity` (`None`: anonymous) from a browser at `origin` may
/// subscribe. `anonymous_allowed`: the hub lets anonymous connections use channels that do not
/// require auth.
pub(crate) fn may_subscribe(
    policy: &ChannelPolicy,
    identity: Option<&Identity>,
    origin: Option<&str>,
    anonymous_allowed: bool,
) -> Result<(), ProtocolError> {
    match identity {
        None if policy.require_auth || !anonymous_allowed => {
            return Err(ProtocolError::new(
                "unauthorized",
                "authenticate first: connect with ?token= or send Auth",
            ))
        }
        None if !policy.required_roles.is_empty() => {
            return Err(ProtocolError::new(
                "unauthorized",
                "this channel needs an authenticated user",
            ))
        }
        Some(id) if !policy.may_subscribe(&id.roles) => {
            return Err(ProtocolError::new(
                "forbidden",
                format!(
                    "this channel needs one of the roles {}",
                    policy.required_roles.join(", ")
                ),
            ))
        }
        _ => {}
    }
    if !policy.allows_origin(origin) {
        return Err(ProtocolError::new(
            "forbidden",
            format!("origin {} may not use this channel", origin.unwrap_or_default()),
        ));
    }
    Ok(())
}

/// Whether a subscriber with `roles` may Broadcast on `channel` now: its publish roles, then
/// its rate (`rate_ok` takes a token from the connection's bucket for the channel).
pub(crate) fn may_broadcast(
    policy: &ChannelPolicy,
    channel: &str,
    roles: &[String],
    rate_ok: impl FnOnce(&RatePolicy) -> bool,
) -> Result<(), ProtocolError> {
    if !policy.may_publish(roles) {
        return Err(ProtocolError::new(
            "forbidden",
            format!(
                "publishing on `{channel}` needs one of the roles {}",
                policy.publish_roles.join(", ")
            ),
        ));
    }
    if let Some(rate) = &policy.rate_limit {
        if !rate_ok(rate) {
            return Err(ProtocolError::new(
                "rate_limited",
                format!(
                    "more than {} messages per minute (burst {}) on `{channel}`",
                    rate.per_minute, rate.burst
                ),
            ));
        }
    }
    Ok(())
}

/// Token bucket for one connection on one channel, or for all the frames of a connection.
pub(crate) struct Bucket {
    tokens: f64,
    last: std::time::Instant,
}

impl Bucket {
    pub(crate) fn new(rate: &RatePolicy) -> Self {
        Bucket {
            tokens: f64::from(rate.burst),
            last: std::time::Instant::now(),
        }
    }

    /// Takes one token if there is one (the policy may have changed since the bucket was made).
    pub(crate) fn take(&mut self, rate: &RatePolicy) -> bool {
        self.refill(rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket holds its whole burst again: as good as a new one.
    pub(crate) fn is_full(&mut self, rate: &RatePolicy) -> bool {
        self.refill(rate);
        self.tokens >= f64::from(rate.burst)
    }

    fn refill(&mut self, rate: &RatePolicy) {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * f64::from(rate.per_minute) / 60.0;
        self.tokens = (self.tokens + refill).min(f64::from(rate.burst));
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[&str]) -> Identity {
        Identity {
            user_id: "u1".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn code(r: Result<(), ProtocolError>) -> Option<&'static str> {
        r.err().map(|e| e.code)
    }

    #[test]
    fn anonymous_connections_use_only_open_channels_of_a_hub_that_admits_them() {
        let open = ChannelPolicy {
            require_auth: false,
            ..ChannelPolicy::default()
        };
        assert_eq!(code(may_subscribe(&open, None, None, true)), None);
        assert_eq!(
            code(may_subscribe(&open, None, None, false)),
            Some("unauthorized")
        );
        let closed = ChannelPolicy::default();
        assert_eq!(
            code(may_subscribe(&closed, None, None, true)),
            Some("unauthorized")
        );
        let roles = ChannelPolicy {
            required_roles: vec!["admin".into()],
            ..open
        };
        let e = may_subscribe(&roles, None, None, true).expect_err("needs a user");
        assert_eq!(e.message, "this channel needs an authenticated user");
    }

    #[test]
    fn required_roles_and_origins_are_checked_for_subscribers() {
        let p = ChannelPolicy {
            required_roles: vec!["admin".into(), "ops".into()],
            allowed_origins: vec!["https://app.example.com".into()],
            ..ChannelPolicy::default()
        };
        let e = may_subscribe(&p, Some(&user(&["viewer"])), None, false).expect_err("role");
        assert_eq!(
            (e.code, e.message.as_str()),
            ("forbidden", "this channel needs one of the roles admin, ops")
        );
        assert_eq!(code(may_subscribe(&p, Some(&user(&["ops"])), None, false)), None);
        let other = Some("https://evil.example.com");
        let e = may_subscribe(&p, Some(&user(&["ops"])), other, false).expect_err("origin");
        assert_eq!(
            e.message,
            "origin https://evil.example.com may not use this channel"
        );
        let own = Some("https://app.example.com");
        assert_eq!(code(may_subscribe(&p, Some(&user(&["ops"])), own, false)), None);
    }

    #[test]
    fn publish_roles_come_before_the_rate() {
        let p = ChannelPolicy {
            publish_roles: vec!["editor".into()],
            rate_limit: Some(RatePolicy {
                per_minute: 60,
                burst: 2,
            }),
            ..ChannelPolicy::default()
        };
        let mut asked = false;
        let e = may_broadcast(&p, "news", &["viewer".to_string()], |_| {
            asked = true;
            true
        })
        .expect_err("role");
        assert_eq!(e.message, "publishing on `news` needs one of the roles editor");
        assert!(!asked, "a refused publisher takes no token");
        let editor = ["editor".to_string()];
        assert_eq!(code(may_broadcast(&p, "news", &editor, |r| r.burst == 2)), None);
        let e = may_broadcast(&p, "news", &editor, |_| false).expect_err("rate");
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                "rate_limited",
                "more than 60 messages per minute (burst 2) on `news`"
            )
        );
        let free = ChannelPolicy::default();
        assert_eq!(code(may_broadcast(&free, "news", &[], |_| false)), None);
    }

    #[test]
    fn a_bucket_gives_its_burst_then_refuses() {
        let rate = RatePolicy {
            per_minute: 1,
            burst: 2,
        };
        let mut b = Bucket::new(&rate);
        assert!(b.take(&rate));
        assert!(b.take(&rate));
        assert!(!b.take(&rate), "one token a minute is not back yet");
        // A policy that now allows more refills faster, up to its own burst.
        let faster = RatePolicy {
            per_minute: 6_000_000,
            burst: 1,
        };
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(b.take(&faster));
    }
}
