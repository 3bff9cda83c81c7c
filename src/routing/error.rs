//! Why a route's path or methods do not compile; the text is what the route's condition says.

/// A path or method list no route can be built from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("path `{0}` must start with '/'")]
    PathStart(String),
    #[error("path is longer than 2048 characters")]
    PathTooLong,
    #[error("path `{0}` contains {1:?}, which cannot appear in a request path")]
    PathChar(String, char),
    #[error("path `{0}`: `*` is only allowed as the last segment (`/prefix/*`)")]
    StarNotLast(String),
    #[error("path `{0}` contains an empty segment (`//`)")]
    EmptySegment(String),
    #[error("path `{path}`: segment `{segment}` must be a whole `{{name}}`")]
    PartialParam { path: String, segment: String },
    #[error("path `{path}`: parameter `{segment}` needs a name of letters, digits, `_` or `-`")]
    ParamName { path: String, segment: String },
    #[error("path `{path}`: parameter `{{{name}}}` appears twice")]
    DuplicateParam { path: String, name: String },
    #[error("path `{path}`: segment `{segment}` mixes text with `{{`, `}}` or `*`; use a whole segment")]
    MixedSegment { path: String, segment: String },
    #[error("unknown HTTP method `{0}`")]
    UnknownMethod(String),
}
