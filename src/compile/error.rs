//! Why a resource does not compile. The text is the message of the resource's `Accepted=False`
//! (or `ResolvedRefs=False`) condition, so it names the field and says what to write instead.

use crate::routing::channels::ChannelError;
use crate::routing::SpecError;
use crate::upstream::EndpointError;

/// A resource the compiler refuses, with the words its condition carries.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Invalid {
    /// A path or method list the routing model cannot take.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// An endpoint URL the gateway cannot dial.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// A `WebSocketChannel` spec no channel policy can be built from.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// A field whose value breaks a rule of the resource's schema (the text names the field).
    #[error("{0}")]
    Field(String),
    /// Valid, but the tenancy rules do not let the resource's namespace have it (reason
    /// `NotPermitted`).
    #[error("{0}")]
    NotPermitted(String),
}

impl Invalid {
    /// The reason of the condition this becomes.
    pub fn reason(&self) -> &'static str {
        match self {
            Invalid::NotPermitted(_) => crate::api::reasons::NOT_PERMITTED,
            _ => crate::api::reasons::INVALID_SPEC,
        }
    }
}

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid::Field(message)
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        Invalid::Field(message.to_string())
    }
}
