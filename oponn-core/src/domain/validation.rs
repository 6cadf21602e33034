//! Validation failures, keyed by the input field they belong to.

use std::borrow::Cow;
use std::fmt;

/// The input a validation message belongs to.
///
/// The web crate maps each field to its form control, so a message lands
/// under the input that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The ballot's measure (its question).
    Measure,
    /// The list of predefined options.
    Options,
    /// The scheduled start time.
    ScheduledStart,
    /// The voting window, in minutes.
    VotingWindow,
    /// A write-in vote's text.
    WriteIn,
    /// The fewest options an approval voter must choose.
    MinChoices,
    /// The most options an approval voter may choose.
    MaxChoices,
    /// A vote's choice of options (several, or a ranking).
    Choice,
    /// The voter links an owner asks for: their count and labels.
    Invitations,
}

impl Field {
    /// A stable lowercase name for the field, for logs and wire formats.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Measure => "measure",
            Field::Options => "options",
            Field::ScheduledStart => "scheduled_start",
            Field::VotingWindow => "voting_window",
            Field::WriteIn => "write_in",
            Field::MinChoices => "min_choices",
            Field::MaxChoices => "max_choices",
            Field::Choice => "choice",
            Field::Invitations => "invitations",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule broken by one field, with the message users see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    field: Field,
    message: Cow<'static, str>,
}

impl FieldError {
    pub(crate) const fn new(field: Field, message: &'static str) -> Self {
        Self {
            field,
            message: Cow::Borrowed(message),
        }
    }

    /// A rule broken by `field` whose message names what broke it (the
    /// option that repeats another).
    pub(crate) fn naming(field: Field, message: String) -> Self {
        Self {
            field,
            message: Cow::Owned(message),
        }
    }

    /// The field that broke the rule.
    pub fn field(&self) -> Field {
        self.field
    }

    /// The user-facing message, exactly as DESIGN.md words it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[cfg(test)]
impl FieldError {
    /// The message of a rule that names nothing, as the constant it is
    /// (for tests comparing with `messages`).
    pub(crate) fn rule(&self) -> &'static str {
        match &self.message {
            Cow::Borrowed(message) => message,
            Cow::Owned(_) => "(a message naming the input)",
        }
    }
}

/// Every field error found in one input, at most one per field.
///
/// Validation reports all broken fields at once so a form can show every
/// message in a single round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("invalid input: {}", summary(.errors))]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ValidationErrors {
    /// Records `error` unless its field already has one: the first rule a
    /// field breaks is the one worth telling the user about.
    pub(crate) fn push(&mut self, error: FieldError) {
        if self.get(error.field).is_none() {
            self.errors.push(error);
        }
    }

    /// Keeps the value of `result`, recording its error if it failed.
    pub(crate) fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// The message for `field`, if it broke a rule.
    pub fn get(&self, field: Field) -> Option<&str> {
        self.errors
            .iter()
            .find(|error| error.field == field)
            .map(FieldError::message)
    }

    /// [`FieldError::rule`] of `field`'s error, if it broke a rule.
    #[cfg(test)]
    pub(crate) fn rule(&self, field: Field) -> Option<&'static str> {
        self.errors
            .iter()
            .find(|error| error.field == field)
            .map(FieldError::rule)
    }

    /// All field errors, in the order the fields were checked.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.errors.iter()
    }

    /// True when no rule was broken.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl From<FieldError> for ValidationErrors {
    fn from(error: FieldError) -> Self {
        Self {
            errors: vec![error],
        }
    }
}

/// The user-facing messages, in one place so the wording cannot drift.
pub mod messages {
    /// Measure shorter than 3 characters.
    pub const MEASURE_TOO_SHORT: &str = "at least 3 characters";
    /// Measure longer than 255 characters.
    pub const MEASURE_TOO_LONG: &str = "at most 255 characters";
    /// A measure with a control, invisible or bidi character.
    pub const MEASURE_HIDDEN_CHARACTERS: &str = "must not contain control or invisible characters";
    /// Fewer than 2 options without write-ins.
    pub const TOO_FEW_OPTIONS: &str = "at least 2 options when write-ins are disabled";
    /// No option at all with write-ins.
    pub const TOO_FEW_OPTIONS_WITH_WRITE_INS: &str = "at least 1 option when write-ins are enabled";
    /// An option outside 1..=64 characters.
    pub const OPTION_LENGTH: &str = "between 1 and 64 characters";
    /// An option with a control, invisible or bidi character.
    pub const OPTION_HIDDEN_CHARACTERS: &str =
        "options must not contain control or invisible characters";
    /// More than `MAX_MARKS_PER_CHARACTER` (6) combining marks on one character.
    pub const TOO_MANY_MARKS: &str = "at most 6 accents or other combining marks on one character";
    /// More than 64 options.
    pub const TOO_MANY_OPTIONS: &str = "at most 64 options";
    /// Two options equal ignoring case and Unicode normalization.
    pub const OPTIONS_NOT_UNIQUE: &str = "options must be unique";

    /// [`OPTIONS_NOT_UNIQUE`], naming the option that repeats an earlier
    /// one (as typed; they may differ in case, width or look-alikes).
    pub fn options_repeat(repeat: &str, earlier: &str) -> String {
        if repeat == earlier {
            format!("{OPTIONS_NOT_UNIQUE}: \"{repeat}\" is listed twice")
        } else {
            format!("{OPTIONS_NOT_UNIQUE}: \"{repeat}\" is the same option as \"{earlier}\"")
        }
    }
    /// `scheduled` chosen with no time given.
    pub const SCHEDULED_START_REQUIRED: &str =
        "Scheduled start time is required when 'scheduled' is selected";
    /// A scheduled start that is not in the future.
    pub const SCHEDULED_START_IN_PAST: &str = "Scheduled start time must be in the future";
    /// A scheduled start further ahead than `MAX_SCHEDULE_AHEAD` (366 days),
    /// or beyond the dates that can be represented.
    pub const SCHEDULED_START_TOO_FAR: &str = "Scheduled start time is too far in the future";
    /// A scheduled start that does not parse.
    pub const SCHEDULED_START_FORMAT: &str = "Invalid scheduled start time format";
    /// A voting window that is not a whole number of minutes.
    pub const VOTING_WINDOW_FORMAT: &str = "voting window must be a whole number of minutes";
    /// A voting window longer than the longest supported.
    pub const VOTING_WINDOW_TOO_LONG: &str = "at most 525600 minutes (one year)";
    /// A custom end chosen with no time given.
    pub const VOTING_END_REQUIRED: &str = "End time is required when 'custom' is selected";
    /// A custom end that does not parse.
    pub const VOTING_END_FORMAT: &str = "Invalid end time format";
    /// A custom end at or before the start.
    pub const VOTING_END_NOT_AFTER_START: &str = "End time must be after voting starts";
    /// An empty write-in.
    pub const WRITE_IN_REQUIRED: &str = "Write-in value required";
    /// A write-in longer than 64 characters.
    pub const WRITE_IN_TOO_LONG: &str = "at most 64 characters";
    /// A write-in with a control, invisible or bidi character.
    pub const WRITE_IN_HIDDEN_CHARACTERS: &str =
        "Write-in must not contain control or invisible characters";
    /// A write-in that would add an option past the ballot's limit of
    /// write-in options (`ServiceSettings::max_write_in_options`).
    pub const WRITE_IN_LIMIT_REACHED: &str = "This ballot has reached its limit of write-in options; choose one of the existing options.";
    /// A guest on a ballot for signed-in voters only.
    pub const SIGN_IN_REQUIRED: &str = "Sign in to vote on this ballot.";
    /// Where results would be, while they show only to those who voted.
    pub const RESULTS_AFTER_VOTING: &str =
        "Results are shown once you have voted, or when voting closes.";
    /// Where results would be, while they show only once voting closes.
    pub const RESULTS_AFTER_CLOSE: &str = "Results are shown when voting closes.";
    /// The voter already voted on this ballot.
    pub const ALREADY_VOTED: &str = "You have already voted on this ballot.";
    /// The ballot's start lies in the future.
    pub const NOT_STARTED: &str = "Voting has not started for this ballot";
    /// The ballot's window has passed or it was closed.
    pub const ENDED: &str = "Voting has ended for this ballot";
    /// The chosen option is not one of the ballot's.
    pub const INVALID_OPTION: &str = "Invalid option for this ballot";
    /// A write-in on a ballot that does not take them.
    pub const WRITE_INS_NOT_ALLOWED: &str = "Write-in votes are not allowed for this ballot";
    /// A close or delete by someone other than the ballot's owner.
    pub const NOT_OWNER: &str = "Only the person who created this ballot may close or delete it.";
    /// An approval bound below 1.
    pub const CHOICES_AT_LEAST_ONE: &str = "choose at least 1";
    /// An approval bound above the number of predefined options.
    pub const CHOICES_OVER_OPTIONS: &str = "cannot exceed the number of options";
    /// An approval minimum above its maximum.
    pub const CHOICES_MIN_OVER_MAX: &str = "minimum cannot exceed maximum";
    /// A ranked ballot created with write-ins allowed.
    pub const RANKED_WRITE_INS: &str = "Write-in votes are not allowed for ranked ballots";
    /// A ranked vote that ranks nothing.
    pub const RANK_AT_LEAST_ONE: &str = "Rank at least one option";
    /// A ranked vote that ranks an option twice.
    pub const RANKED_TWICE: &str = "Each option can be ranked only once";
    /// Voter links asked for at once: too few or too many.
    pub const INVITATION_COUNT: &str = "between 1 and 500 voter links at a time";
    /// Labels given for voter links, but not one per link.
    pub const INVITATION_LABELS_PER_LINK: &str = "give one label per link, or none";
    /// A voter link's label is too long.
    pub const INVITATION_LABEL_TOO_LONG: &str = "labels are at most 100 characters";
    /// A voter link's label hides characters.
    pub const INVITATION_LABEL_HIDDEN_CHARACTERS: &str =
        "labels must not contain control or invisible characters";
    /// A ballot already has as many voter links as it may.
    pub const INVITATIONS_LIMIT_REACHED: &str = "a ballot has at most 10000 voter links";
    /// Voter links asked for on a ballot anyone may vote on.
    pub const NOT_INVITE_ONLY: &str =
        "Voter links are for invite-only ballots; anyone with this ballot's link can vote.";
    /// Someone without an invitation tried to vote on an invite-only ballot.
    pub const INVITED_ONLY: &str = "This ballot is open to invited voters only.";
    /// A voting link that is unknown, revoked or malformed.
    pub const LINK_NOT_VALID: &str = "This voting link is not valid";
    /// A voting link whose vote was cast, opened in another browser.
    pub const LINK_USED: &str = "This voting link has already been used";
    /// A used voter link cannot be revoked.
    pub const INVITATION_USED: &str =
        "This voter link was already used to vote; it cannot be revoked.";
    /// The owner's view of voter links, for someone else.
    pub const NOT_OWNER_OF_LINKS: &str =
        "Only the person who created this ballot may manage its voter links.";
    /// A ballot whose owner did not publish a bulletin.
    pub const NO_BULLETIN: &str = "This ballot's owner did not publish a bulletin of its votes.";
    /// A ranked form that gives one rank to two options.
    pub const RANK_GIVEN_TWICE: &str = "Each rank can be given to one option only";

    /// A choice of another shape than the ballot's method (by its name)
    /// takes, naming the shape it does take.
    pub fn wrong_shape(method: &str) -> &'static str {
        match method {
            "approval" => "This ballot takes a set of options (option_ids)",
            "ranked" => "This ballot takes a ranking (ranking)",
            _ => "This ballot takes one option (option_id or write_in)",
        }
    }

    /// `Select at least {min} options` (singular for 1), for an approval
    /// vote with too few options.
    pub fn select_at_least(min: u32) -> String {
        format!(
            "Select at least {min} {}",
            if min == 1 { "option" } else { "options" }
        )
    }

    /// `Select at most {max} options` (singular for 1), for an approval
    /// vote with too many options.
    pub fn select_at_most(max: u32) -> String {
        format!(
            "Select at most {max} {}",
            if max == 1 { "option" } else { "options" }
        )
    }
}
