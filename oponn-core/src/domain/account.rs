//! Accounts: people who signed in through an identity provider.

use time::OffsetDateTime;

use super::ids::AccountId;

/// Longest email address accepted (RFC 5321's path limit).
const EMAIL_MAX_LEN: usize = 254;

/// A verified email address, trimmed and lowercased: the key that makes
/// the same person signing in through two providers one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalizes an address a provider vouched for.
    ///
    /// # Errors
    /// [`InvalidEmail`] for anything without a local part, an `@` and a domain.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= EMAIL_MAX_LEN
            && !email.chars().any(char::is_whitespace)
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.contains('@')
            });
        if valid {
            Ok(Self(email))
        } else {
            Err(InvalidEmail)
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Not an email address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a usable email address")]
pub struct InvalidEmail;

/// Who a provider says someone is: the provider's name and its stable id
/// for them (not their email, which may change).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    provider: String,
    subject: String,
}

impl Identity {
    /// An identity at `provider` (`github`, `google`, `mock`, …).
    pub fn new(provider: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            subject: subject.into(),
        }
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The provider's id for the person.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    id: AccountId,
    email: Email,
    created_at: OffsetDateTime,
}

impl Account {
    /// An account as storage holds it.
    pub fn new(id: AccountId, email: Email, created_at: OffsetDateTime) -> Self {
        Self {
            id,
            email,
            created_at,
        }
    }

    /// The account's id.
    pub fn id(&self) -> &AccountId {
        &self.id
    }

    /// The account's email.
    pub fn email(&self) -> &Email {
        &self.email
    }

    /// When the account was created.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Ada@Example.ORG ").unwrap().as_str(),
            "ada@example.org"
        );
        for bad in [
            "",
            "ada",
            "@example.org",
            "ada@",
            "ada@localhost",
            "a b@example.org",
            "a@b@c.org",
        ] {
            assert_eq!(Email::parse(bad), Err(InvalidEmail), "{bad}");
        }
    }
}
