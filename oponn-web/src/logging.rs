//! How failures reach the log: an error with its whole chain of causes,
//! so a `503` names the storage error behind it, not only "storage is
//! unavailable".

use std::error::Error;
use std::fmt;

/// `error`, then each of its sources, as `error: cause: cause`.
pub(crate) struct Causes<'a>(pub(crate) &'a (dyn Error + 'static));

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Causes;

    #[derive(Debug, thiserror::Error)]
    #[error("storage is unavailable")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_named_in_order() {
        let error = Outer(std::io::Error::other("disk full"));
        assert_eq!(
            Causes(&error).to_string(),
            "storage is unavailable: disk full"
        );
    }
}
