//! What the tool reads from Oponn's HTML, as a browser would see it:
//! parsed with `scraper` (html5ever), so attribute order, quoting and
//! entities do not matter.

use std::sync::LazyLock;

use scraper::{ElementRef, Html, Selector};

/// The name of the hidden input (and header) carrying the CSRF token.
pub(crate) const CSRF_FIELD: &str = "X-CSRF-Token";

/// The value of `option_id` that asks for a write-in rather than an option.
const WRITE_IN: &str = "__write_in__";

/// The longest refusal message kept in an error kind.
const MESSAGE_LIMIT: usize = 120;

fn selector(css: &'static str) -> Selector {
    // The selectors are constants of this file; a typo fails every test.
    Selector::parse(css).expect("a valid constant CSS selector")
}

static CSRF_INPUT: LazyLock<Selector> = LazyLock::new(|| selector(r#"input[name="X-CSRF-Token"]"#));
static OPTION_INPUTS: LazyLock<Selector> =
    LazyLock::new(|| selector(r#"input[type="radio"][name="option_id"]"#));
static ALERTS: LazyLock<Selector> = LazyLock::new(|| selector(".alert-error"));
static FIELD_ERRORS: LazyLock<Selector> = LazyLock::new(|| selector(".field-error-msg"));

/// What a voter needs from the vote page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VoteForm {
    /// The form's CSRF token.
    pub(crate) csrf_token: String,
    /// The values of the option radio buttons, write-in excluded.
    pub(crate) option_ids: Vec<String>,
}

/// Reads the vote form from a vote page; `Err` names what is missing.
pub(crate) fn vote_form(html: &str) -> Result<VoteForm, &'static str> {
    let document = Html::parse_document(html);
    let csrf_token = csrf_in(&document).ok_or("no CSRF token on the page")?;
    let option_ids: Vec<String> = document
        .select(&OPTION_INPUTS)
        .filter_map(|input| input.value().attr("value"))
        .filter(|value| !value.is_empty() && *value != WRITE_IN)
        .map(str::to_owned)
        .collect();
    if option_ids.is_empty() {
        return Err("no options on the page");
    }
    Ok(VoteForm {
        csrf_token,
        option_ids,
    })
}

/// The CSRF token of the first form on a page.
pub(crate) fn csrf_token(html: &str) -> Option<String> {
    csrf_in(&Html::parse_document(html))
}

fn csrf_in(document: &Html) -> Option<String> {
    document
        .select(&CSRF_INPUT)
        .find_map(|input| input.value().attr("value"))
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
}

/// The refusal a page shows in its `.alert-error`, whitespace collapsed
/// and cut to a length fit for an error kind.
pub(crate) fn alert(html: &str) -> Option<String> {
    let document = Html::parse_document(html);
    document
        .select(&ALERTS)
        .map(text_of)
        .find(|text| !text.is_empty())
}

/// Every message a re-rendered form shows: its alert and the messages
/// under its fields.
pub(crate) fn form_errors(html: &str) -> Vec<String> {
    let document = Html::parse_document(html);
    document
        .select(&ALERTS)
        .chain(document.select(&FIELD_ERRORS))
        .map(text_of)
        .filter(|text| !text.is_empty())
        .collect()
}

fn text_of(element: ElementRef<'_>) -> String {
    let text = element
        .text()
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    match text.char_indices().nth(MESSAGE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOTE_PAGE: &str = r#"<!doctype html><html><body>
        <section id="vote-section">
          <div class="alert-error" role="alert">
            You have   already voted on this ballot.
          </div>
          <form method="post" action="/vote/abc">
            <input value="tok&amp;en/+=" type="hidden" name="X-CSRF-Token">
            <label class="radio-label"><input type="radio" name="option_id" value="1"> <span>a</span></label>
            <label class="radio-label"><input name='option_id' type=radio value=2> <span>b</span></label>
            <label class="radio-label"><input type="radio" name="option_id" value="__write_in__"></label>
            <input type="text" name="option_id" value="not a radio">
          </form>
        </section></body></html>"#;

    #[test]
    fn the_vote_form_yields_its_token_and_options() {
        let form = vote_form(VOTE_PAGE).unwrap();
        assert_eq!(form.csrf_token, "tok&en/+=");
        assert_eq!(form.option_ids, ["1", "2"]);
    }

    #[test]
    fn a_page_without_token_or_options_says_which() {
        assert_eq!(
            vote_form("<p>nothing here</p>"),
            Err("no CSRF token on the page")
        );
        assert_eq!(
            vote_form(r#"<input type="hidden" name="X-CSRF-Token" value="t">"#),
            Err("no options on the page")
        );
    }

    #[test]
    fn refusals_are_read_from_the_alert() {
        assert_eq!(
            alert(VOTE_PAGE).as_deref(),
            Some("You have already voted on this ballot.")
        );
        assert_eq!(alert("<p>fine</p>"), None);
        let long = format!(r#"<div class="alert-error">{}</div>"#, "x".repeat(500));
        assert_eq!(alert(&long).unwrap().chars().count(), MESSAGE_LIMIT + 1);
    }

    #[test]
    fn form_errors_collect_the_alert_and_field_messages() {
        let html = r#"<div class="field-error-msg" id="measure-error">at least 3 characters</div>
            <div class="field-error-msg" id="options_raw-error"></div>"#;
        assert_eq!(form_errors(html), ["at least 3 characters"]);
        assert_eq!(csrf_token(VOTE_PAGE).as_deref(), Some("tok&en/+="));
    }
}
