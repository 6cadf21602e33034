//! Invitations: the personal, single-use voting links of invite-only ballots.
//!
//! An owner asks for links; each carries an [`InvitationToken`] of 192
//! random bits, shown to the owner once. Storage keeps only its
//! [`InvitationHash`], a keyed hash, so neither a copy of the database nor
//! a guess reveals a link. Whoever opens a link votes as its
//! [`InvitationId`]: one vote per invitation, whatever browser or account
//! casts it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;

use super::text::{TextFault, check_characters};
use super::validation::{Field, FieldError, messages};

/// Most voter links one request may ask for.
pub const MAX_INVITATIONS_PER_REQUEST: u32 = 500;
/// Most voter links one ballot may have, revoked ones included.
pub const MAX_INVITATIONS_PER_BALLOT: u32 = 10_000;
/// Longest label an owner may give a link, in characters.
pub const INVITATION_LABEL_MAX_CHARS: usize = 100;

/// Random bytes in an [`InvitationToken`]: 192 bits.
const TOKEN_BYTES: usize = 24;

/// An invitation's number within its ballot, from 1 in the order issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvitationId(u32);

impl InvitationId {
    /// Wraps a stored invitation number.
    pub const fn new(number: u32) -> Self {
        Self(number)
    }

    /// The invitation's number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Parses the number a route or cookie carries.
    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok().filter(|&number| number > 0).map(Self)
    }
}

impl fmt::Display for InvitationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The secret of one voting link (`/i/{token}`): 192 random bits as 32
/// URL-safe characters. Shown to the owner once; never stored, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct InvitationToken(String);

impl InvitationToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        crate::crypto::fill_random(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token as a link or an `Authorization` header carries it: `None`
    /// unless it is exactly what [`generate`](Self::generate) makes.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != TOKEN_BYTES.div_ceil(3) * 4 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        (bytes.len() == TOKEN_BYTES && URL_SAFE_NO_PAD.encode(&bytes) == text)
            .then(|| Self(text.to_owned()))
    }

    /// The token's text, for the link shown to the owner.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InvitationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A token is a vote; keep it out of logs.
        f.write_str("InvitationToken(..)")
    }
}

/// A keyed hash of an [`InvitationToken`]: how storage finds a link.
#[derive(Debug, Clone, Copy)]
pub struct InvitationHash([u8; 32]);

impl std::hash::Hash for InvitationHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl InvitationHash {
    /// Wraps hash bytes (computed, or read back from storage).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash's bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for InvitationHash {
    /// Compared in constant time: how long a comparison takes says nothing
    /// about how much of a guessed token's hash was right.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for InvitationHash {}

/// The label an owner gives a link (a name, "table 4"), shown only to the
/// owner: trimmed, 1 to [`INVITATION_LABEL_MAX_CHARS`] characters, on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationLabel(String);

impl InvitationLabel {
    /// Trims `raw`, checks its characters and its length; a blank label is
    /// no label (`Ok(None)`).
    ///
    /// # Errors
    /// A [`Field::Invitations`] error for a control, invisible or
    /// disguising character, or a label that is too long.
    pub fn parse(raw: &str) -> Result<Option<Self>, FieldError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > INVITATION_LABEL_MAX_CHARS {
            return Err(FieldError::new(
                Field::Invitations,
                messages::INVITATION_LABEL_TOO_LONG,
            ));
        }
        check_characters(trimmed).map_err(|fault| {
            FieldError::new(
                Field::Invitations,
                match fault {
                    TextFault::StackedMarks => messages::TOO_MANY_MARKS,
                    TextFault::Hidden => messages::INVITATION_LABEL_HIDDEN_CHARACTERS,
                },
            )
        })?;
        Ok(Some(Self(trimmed.to_owned())))
    }

    /// Wraps text that was validated when it was first stored.
    pub(crate) fn trusted(text: String) -> Self {
        Self(text)
    }

    /// The label's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The labels of the links one request asks for: `count` links, and
/// either no labels or one per link (a blank one is no label).
///
/// # Errors
/// A [`Field::Invitations`] error when the count is 0 or above
/// [`MAX_INVITATIONS_PER_REQUEST`], the labels are not one per link, or a
/// label breaks [`InvitationLabel::parse`]'s rules.
pub fn parse_invitation_labels(
    count: u32,
    labels: &[String],
) -> Result<Vec<Option<InvitationLabel>>, FieldError> {
    if count == 0 || count > MAX_INVITATIONS_PER_REQUEST {
        return Err(FieldError::new(
            Field::Invitations,
            messages::INVITATION_COUNT,
        ));
    }
    if labels.is_empty() {
        return Ok((0..count).map(|_| None).collect());
    }
    if u32::try_from(labels.len()).ok() != Some(count) {
        return Err(FieldError::new(
            Field::Invitations,
            messages::INVITATION_LABELS_PER_LINK,
        ));
    }
    labels
        .iter()
        .map(|label| InvitationLabel::parse(label))
        .collect()
}

/// One invitation as its owner sees it: never its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Its number within the ballot.
    pub id: InvitationId,
    /// The owner's label, if they gave one.
    pub label: Option<InvitationLabel>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When a vote was first cast with it.
    pub used_at: Option<OffsetDateTime>,
    /// When the owner revoked it.
    pub revoked_at: Option<OffsetDateTime>,
}

impl Invitation {
    /// Whether a vote was cast with it.
    pub fn is_used(&self) -> bool {
        self.used_at.is_some()
    }

    /// Whether the owner revoked it.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// A link just issued: the only time its token is seen.
#[derive(Debug, Clone)]
pub struct IssuedInvitation {
    /// Its number within the ballot.
    pub id: InvitationId,
    /// The owner's label, if they gave one.
    pub label: Option<InvitationLabel>,
    /// The secret the link carries.
    pub token: InvitationToken,
}

#[cfg(test)]
mod tests {
    // A test fails by panicking.
    #![allow(clippy::unwrap_used)]

    use super::{
        INVITATION_LABEL_MAX_CHARS, InvitationHash, InvitationLabel, InvitationToken,
        MAX_INVITATIONS_PER_REQUEST, parse_invitation_labels,
    };

    #[test]
    fn tokens_parse_back_and_nothing_else_does() {
        let token = InvitationToken::generate();
        assert_eq!(token.as_str().len(), 32);
        assert_eq!(InvitationToken::parse(token.as_str()), Some(token.clone()));
        let mut longer = token.as_str().to_owned();
        longer.push('A');
        for text in ["", "abc", &longer, &token.as_str()[1..], &"=".repeat(32)] {
            assert_eq!(InvitationToken::parse(text), None, "{text:?}");
        }
        assert_ne!(token, InvitationToken::generate());
    }

    #[test]
    fn hashes_compare_by_value() {
        let hash = InvitationHash::from_bytes([3; 32]);
        assert_eq!(hash, InvitationHash::from_bytes([3; 32]));
        assert_ne!(hash, InvitationHash::from_bytes([4; 32]));
    }

    #[test]
    fn counts_and_labels_are_checked_at_their_bounds() {
        assert!(parse_invitation_labels(0, &[]).is_err());
        assert_eq!(parse_invitation_labels(1, &[]).unwrap().len(), 1);
        assert_eq!(
            parse_invitation_labels(MAX_INVITATIONS_PER_REQUEST, &[])
                .unwrap()
                .len(),
            500
        );
        assert!(parse_invitation_labels(MAX_INVITATIONS_PER_REQUEST + 1, &[]).is_err());
        assert!(parse_invitation_labels(2, &["a".into()]).is_err());
        let labels = parse_invitation_labels(2, &["  Ana ".into(), " ".into()]).unwrap();
        assert_eq!(labels[0].as_ref().unwrap().as_str(), "Ana");
        assert_eq!(labels[1], None);
        let longest = "x".repeat(INVITATION_LABEL_MAX_CHARS);
        assert!(InvitationLabel::parse(&longest).unwrap().is_some());
        assert!(InvitationLabel::parse(&format!("{longest}x")).is_err());
        assert!(InvitationLabel::parse("table\u{202E}4").is_err());
        assert!(InvitationLabel::parse("a\nb").is_err());
    }
}
