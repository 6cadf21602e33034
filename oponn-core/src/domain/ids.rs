//! Identifiers: ballots, options, owners and voters.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{InvitationHash, InvitationId, InvitationToken};

/// Length of a ballot id in its text form: 16 bytes as unpadded base64.
const BALLOT_ID_TEXT_LEN: usize = 22;

/// A ballot's id: 128 random bits, written as 22 characters of URL-safe base64.
///
/// Ids are unguessable, so knowing one is what lets a person vote.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BallotId([u8; 16]);

impl BallotId {
    /// A fresh id from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        crate::crypto::fill_random(&mut bytes);
        Self(bytes)
    }

    /// Parses the 22-character text form.
    ///
    /// # Errors
    /// [`InvalidBallotId`] for anything that is not exactly an id's text form.
    pub fn parse(text: &str) -> Result<Self, InvalidBallotId> {
        if text.len() != BALLOT_ID_TEXT_LEN {
            return Err(InvalidBallotId);
        }
        let decoded = URL_SAFE_NO_PAD.decode(text).map_err(|_| InvalidBallotId)?;
        let bytes: [u8; 16] = decoded.try_into().map_err(|_| InvalidBallotId)?;
        let id = Self(bytes);
        // Reject non-canonical encodings (stray low bits in the last
        // character) so every id has exactly one spelling.
        if id.to_string() == text {
            Ok(id)
        } else {
            Err(InvalidBallotId)
        }
    }

    /// The id's 16 bytes, for storage in a binary column.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Rebuilds an id from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for BallotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for BallotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BallotId({self})")
    }
}

/// Text that is not a ballot id; callers answer it as "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a ballot id")]
pub struct InvalidBallotId;

/// An option's number within its ballot: predefined options are numbered
/// from 1 in the order given, write-ins continue the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OptionId(u32);

impl OptionId {
    /// Wraps a stored option number.
    pub const fn new(number: u32) -> Self {
        Self(number)
    }

    /// The option's number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Parses the number a form or API sends.
    pub fn parse(text: &str) -> Option<Self> {
        text.trim().parse().ok().map(Self)
    }
}

impl fmt::Display for OptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who owns a ballot: a signed-in account's id, or a guest browser's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerId(String);

impl OwnerId {
    /// Wraps an owner id the caller has authenticated, or one read back
    /// from storage.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// Whether this requester owns a ballot whose owner is `owner`: the
    /// one rule behind closing, deleting and the owner's controls. A
    /// ballot with no owner is nobody's.
    pub fn owns(&self, owner: Option<&OwnerId>) -> bool {
        owner == Some(self)
    }

    /// The owner of ballots a guest browser creates: `guest:{voter id}`.
    pub fn guest(browser: &VoterId) -> Self {
        Self(format!("guest:{}", browser.as_str()))
    }

    /// The owner of ballots a signed-in account creates:
    /// `account:{account id}`. The prefixes keep a browser id and an
    /// account id that happen to be equal from owning each other's ballots.
    pub fn account(account: &AccountId) -> Self {
        Self(format!("account:{}", account.as_str()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who is voting: a signed-in account, or a guest browser known by the
/// random id in its signed cookie. Never stored; only its [`VoterHash`] is.
///
/// A signed-in account voting from a browser also presents that browser's
/// guest id ([`VoterId::from_browser`]): every identity a voter presents
/// identifies them, so the browser cannot vote again as a guest, nor the
/// account after the browser did.
#[derive(Clone, PartialEq, Eq)]
pub struct VoterId {
    id: String,
    account: bool,
    /// The guest id of the browser a signed-in account votes from.
    browser: Option<String>,
    /// The invitation this voter votes by, on an invite-only ballot.
    invitation: Option<InvitationId>,
}

impl VoterId {
    /// A guest voter, by the id the caller has authenticated (a signed cookie).
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            account: false,
            browser: None,
            invitation: None,
        }
    }

    /// A signed-in account voting as itself.
    pub fn account(account: &AccountId) -> Self {
        Self {
            id: account.as_str().to_owned(),
            account: true,
            browser: None,
            invitation: None,
        }
    }

    /// The holder of an invitation, on the invite-only ballot it belongs
    /// to: one voter per invitation, whoever presents it, so it presents
    /// no other identity.
    pub fn invited(invitation: InvitationId) -> Self {
        Self {
            id: invitation.get().to_string(),
            account: false,
            browser: None,
            invitation: Some(invitation),
        }
    }

    /// The invitation this voter votes by, if any.
    pub fn invitation(&self) -> Option<InvitationId> {
        self.invitation
    }

    /// This account voting from `browser`, a guest voter id, which then
    /// identifies the voter too. A guest's own id needs no second one, so
    /// for a guest (or when `browser` is not a guest) this changes nothing.
    #[must_use]
    pub fn from_browser(mut self, browser: &VoterId) -> Self {
        if self.account && !browser.account && browser.invitation.is_none() && *browser != self {
            self.browser = Some(browser.id.clone());
        }
        self
    }

    /// The browser's guest id a signed-in account presents, if any.
    pub fn browser(&self) -> Option<VoterId> {
        self.browser.as_deref().map(VoterId::new)
    }

    /// A fresh random voter id for a guest browser.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        crate::crypto::fill_random(&mut bytes);
        Self::new(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The id's text (a guest id or an account id).
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// True for a signed-in account.
    pub fn is_account(&self) -> bool {
        self.account
    }
}

/// An account's id: 128 random bits, URL-safe base64, like ballot ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(String);

impl AccountId {
    /// A fresh account id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        crate::crypto::fill_random(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Wraps a stored account id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VoterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Voter ids identify people; keep them out of logs.
        f.write_str("VoterId(..)")
    }
}

/// A keyed hash of a voter id, bound to one ballot: what a vote row stores.
///
/// The hash is keyed, so the rows cannot be checked against a list of
/// known ids without the key, and bound to the ballot, so one voter's rows
/// on two ballots cannot be linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VoterHash([u8; 32]);

impl VoterHash {
    /// The hash's bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a hash from stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

/// Computes [`VoterHash`]es under a secret key shared by every instance.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct VoterHasher {
    key: [u8; 32],
}

impl VoterHasher {
    /// A hasher keyed with 32 secret bytes. Instances that serve the same
    /// ballots must share the key, or one voter would look like two.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The hash that stands for `voter` on `ballot`.
    pub fn hash(&self, ballot: &BallotId, voter: &VoterId) -> VoterHash {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(b"oponn/v1/voter\0");
        mac.update(ballot.as_bytes());
        // The kind is hashed too: a guest id can never pass for an account
        // or an invitation.
        mac.update(match (voter.is_account(), voter.invitation()) {
            (true, _) => b"account\0".as_slice(),
            (false, Some(_)) => b"invitation\0".as_slice(),
            (false, None) => b"guest\0".as_slice(),
        });
        mac.update(voter.as_str().as_bytes());
        VoterHash(mac.finalize().into_bytes().into())
    }

    /// The keyed hash storage finds an invitation by: bound to nothing
    /// but the token (which is random and unique), so a link opens
    /// without knowing its ballot first.
    pub fn invitation(&self, token: &InvitationToken) -> InvitationHash {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(b"oponn/v1/invitation\0");
        mac.update(token.as_str().as_bytes());
        InvitationHash::from_bytes(mac.finalize().into_bytes().into())
    }

    /// The hashes of the other identities `voter` presents on `ballot`
    /// (the browser a signed-in account votes from): a vote held by any of
    /// them is this voter's vote.
    pub fn aliases(&self, ballot: &BallotId, voter: &VoterId) -> Vec<VoterHash> {
        voter
            .browser()
            .map(|browser| self.hash(ballot, &browser))
            .into_iter()
            .collect()
    }
}

impl fmt::Debug for VoterHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VoterHasher(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_keep_their_stored_format() {
        // Stored ballots name their owners so: changing it orphans them.
        assert_eq!(OwnerId::guest(&VoterId::new("b1")).as_str(), "guest:b1");
        assert_eq!(
            OwnerId::account(&AccountId::new("a1")).as_str(),
            "account:a1"
        );
        let owner = OwnerId::guest(&VoterId::new("b1"));
        assert!(owner.owns(Some(&OwnerId::new("guest:b1"))));
        assert!(!owner.owns(Some(&OwnerId::new("account:b1"))));
        assert!(!owner.owns(None));
    }

    #[test]
    fn ballot_ids_are_22_url_safe_characters_and_round_trip() {
        for _ in 0..100 {
            let id = BallotId::generate();
            let text = id.to_string();
            assert_eq!(text.len(), 22);
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(BallotId::parse(&text), Ok(id));
        }
    }

    #[test]
    fn malformed_ballot_ids_are_refused() {
        for text in [
            "",
            "short",
            "AAAAAAAAAAAAAAAAAAAAA!",
            "AAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(BallotId::parse(text), Err(InvalidBallotId), "{text}");
        }
        // The last character carries 2 spare bits; only the canonical form parses.
        assert!(BallotId::parse("AAAAAAAAAAAAAAAAAAAAAA").is_ok());
        assert_eq!(
            BallotId::parse("AAAAAAAAAAAAAAAAAAAAAB"),
            Err(InvalidBallotId)
        );
    }

    #[test]
    fn voter_hash_is_keyed_and_bound_to_the_ballot() {
        let voter = VoterId::new("alice");
        let (a, b) = (BallotId::generate(), BallotId::generate());
        let hasher = VoterHasher::new([7; 32]);
        assert_eq!(hasher.hash(&a, &voter), hasher.hash(&a, &voter));
        assert_ne!(hasher.hash(&a, &voter), hasher.hash(&b, &voter));
        assert_ne!(
            hasher.hash(&a, &voter),
            VoterHasher::new([8; 32]).hash(&a, &voter)
        );
        assert_ne!(
            hasher.hash(&a, &voter),
            hasher.hash(&a, &VoterId::new("bob"))
        );
        let account = AccountId::new("alice");
        assert_ne!(
            hasher.hash(&a, &voter),
            hasher.hash(&a, &VoterId::account(&account)),
            "a guest and an account with the same text are different voters"
        );
    }

    #[test]
    fn an_account_from_a_browser_presents_the_browsers_guest_identity() {
        let (ballot, hasher) = (BallotId::generate(), VoterHasher::new([7; 32]));
        let browser = VoterId::new("laptop");
        let account = VoterId::account(&AccountId::new("ada"));
        let signed_in = account.clone().from_browser(&browser);
        // The account is still who votes; the browser is one more identity.
        assert!(signed_in.is_account());
        assert_eq!(signed_in.as_str(), "ada");
        assert_eq!(
            hasher.hash(&ballot, &signed_in),
            hasher.hash(&ballot, &account)
        );
        assert_eq!(
            hasher.aliases(&ballot, &signed_in),
            [hasher.hash(&ballot, &browser)]
        );
        assert!(hasher.aliases(&ballot, &account).is_empty());
        // A guest presents only itself, and an account is no browser.
        assert!(
            hasher
                .aliases(&ballot, &browser.clone().from_browser(&VoterId::new("x")))
                .is_empty()
        );
        assert!(
            hasher
                .aliases(&ballot, &account.clone().from_browser(&account))
                .is_empty()
        );
    }
}
