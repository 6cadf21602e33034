//! What the tool reads from Oponn's HTML, as a browser would see it, so
//! attribute order, quoting and entities do not matter. The vote page,
//! read once per voter, goes through lol_html's streaming tokenizer with
//! CSS selectors (no tree is built: it is the load generator's hottest
//! work); refusals and form errors, read rarely, through `scraper`.

use std::sync::LazyLock;

use lol_html::{HtmlRewriter, Settings, element};
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
    let mut csrf_token = None::<String>;
    let mut option_ids = Vec::new();
    let mut reader = HtmlRewriter::new(
        Settings::new()
            .append_element_content_handler(element!(r#"input[name="X-CSRF-Token"]"#, |input| {
                let value = attribute(input.get_attribute("value"));
                if csrf_token.is_none() && !value.is_empty() {
                    csrf_token = Some(value);
                }
                Ok(())
            }))
            .append_element_content_handler(element!(
                r#"input[type="radio" i][name="option_id"]"#,
                |input| {
                    let value = attribute(input.get_attribute("value"));
                    if !value.is_empty() && value != WRITE_IN {
                        option_ids.push(value);
                    }
                    Ok(())
                }
            )),
        |_: &[u8]| {},
    );
    // Neither handler fails and no memory limit is set, so reading cannot
    // fail; should it anyway, what was found so far is judged below.
    let _ = reader.write(html.as_bytes());
    let _ = reader.end();
    let csrf_token = csrf_token.ok_or("no CSRF token on the page")?;
    if option_ids.is_empty() {
        return Err("no options on the page");
    }
    Ok(VoteForm {
        csrf_token,
        option_ids,
    })
}

/// An attribute's value as a browser sees it: character references decoded.
fn attribute(raw: Option<String>) -> String {
    raw.map(|raw| html_escape::decode_html_entities(&raw).into_owned())
        .unwrap_or_default()
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

/// The votes a results page or fragment shows, read as any server that
/// renders Oponn's pages shows them: the sum of every element whose whole
/// text is a whole number (Oponn's `.result-count`, the original service's
/// count beside each option). For single-choice results, where each count
/// is votes, that is the number of votes; `None` when it shows no number.
///
/// This is how a run checks the tally and times its watchers against a
/// server without Oponn's JSON API or numbered events.
pub(crate) fn rendered_total(html: &str) -> Option<u64> {
    let document = Html::parse_fragment(html);
    let mut total = None::<u64>;
    for element in document
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
    {
        if element.children().any(|child| child.value().is_element()) {
            continue;
        }
        let text: String = element.text().collect();
        let text = text.trim();
        if !text.is_empty()
            && text.bytes().all(|byte| byte.is_ascii_digit())
            && let Ok(count) = text.parse::<u64>()
        {
            total = Some(total.unwrap_or(0).saturating_add(count));
        }
    }
    total
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

    #[test]
    fn the_rendered_total_is_read_from_oponns_and_the_originals_markup() {
        let oponn = r#"<div class="results" data-seq="3"><ol class="result-list">
            <li class="result-row"><div class="result-head"><span class="result-label">alpha</span>
            <span class="result-figures"><span class="result-count">2</span> <span class="result-percent">66.7%</span></span></div>
            <progress class="result-bar" max="100" value="66.7">66.7%</progress></li>
            <li class="result-row"><div class="result-head"><span class="result-label">beta</span>
            <span class="result-figures"><span class="result-count">1</span> <span class="result-percent">33.3%</span></span></div></li>
            </ol><p class="results-total">total_votes: 3</p></div>"#;
        assert_eq!(rendered_total(oponn), Some(3));
        let original = r#"<div class="results-list"><div class="progress-container"><div class="progress-header">
            <span style="color: red; font-size: 0.9rem">* alpha</span>
            <span style="font-weight: 700">4</span></div>
            <div class="progress-bar-bg"><div class="progress-bar-fill" style="width: 80%"></div></div></div>
            <div class="progress-container"><div class="progress-header"><span>beta</span><span>1</span></div></div></div>"#;
        assert_eq!(rendered_total(original), Some(5));
        assert_eq!(rendered_total("<p>no counts here</p>"), None);
    }

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
    fn inputs_inside_scripts_and_textareas_are_text_not_form_fields() {
        let html = r#"<script>var t = '<input name="X-CSRF-Token" value="fake">';</script>
            <textarea><input type="radio" name="option_id" value="9"></textarea>
            <input name="X-CSRF-Token" type="hidden" value="">
            <INPUT NAME="X-CSRF-Token" TYPE="hidden" VALUE="real">
            <input type="RADIO" name="option_id" value="3">"#;
        let form = vote_form(html).unwrap();
        assert_eq!(form.csrf_token, "real");
        assert_eq!(form.option_ids, ["3"]);
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
