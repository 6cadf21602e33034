//! The pages in a real headless Chromium, driven over WebDriver: create a
//! ballot, vote from a second browser, watch the first page's results move
//! without a reload. Screenshots land in `target/browser-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (or `CHROME_BIN` and
//! `CHROMEDRIVER` pointing at equivalents); the test fails, saying so, when
//! they are missing.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{DEADLINE, spawn_app};

const INSTALL_HINT: &str = "the browser test needs Chromium and ChromeDriver: \
     apt-get install chromium chromium-driver (or set CHROME_BIN and CHROMEDRIVER)";

/// A chromedriver process on a free loopback port, killed on drop with
/// every Chromium it started (which would otherwise outlive it, each
/// still polling its page's live stream).
pub(crate) struct Driver {
    process: Child,
    url: String,
}

impl Driver {
    pub(crate) async fn start() -> Self {
        let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut process = Command::new(&binary)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {binary}: {error}; {INSTALL_HINT}"));
        // chromedriver says when it is ready; wait for that line.
        let stdout = process.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("started successfully") {
                    return;
                }
            }
            panic!("chromedriver exited before it was ready; {INSTALL_HINT}");
        })
        .await
        .expect("chromedriver starts within the deadline");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            process,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new browser with its own profile: its own cookies, like a second person.
    pub(crate) async fn browser(&self) -> Client {
        let chrome = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        assert!(
            std::path::Path::new(&chrome).exists(),
            "no Chromium at {chrome}; {INSTALL_HINT}"
        );
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chrome,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|error| {
                panic!("cannot start a Chromium session: {error}; {INSTALL_HINT}")
            })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.process.id() {
            // Children first, while chromedriver still holds them.
            let tree = descendants(pid);
            if !tree.is_empty() {
                let _ = std::process::Command::new("kill")
                    .arg("-KILL")
                    .args(tree.iter().map(u32::to_string))
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = self.process.start_kill();
    }
}

/// Every process descended from `root`, read from `/proc`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        // `pid (name) state ppid ...`: the name may hold spaces, so read
        // after its closing parenthesis.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parents {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

pub(crate) async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(DEADLINE)
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("{css} did not appear: {error}"))
}

/// Clicks the element that `css` finds.
async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Types `text` into the input whose id is `id`.
async fn type_into(browser: &Client, id: &str, text: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// The text of the live results: read from their container, which stays
/// put while the stream swaps fresh copies of the partial into it.
async fn live_text(browser: &Client) -> String {
    browser
        .find(Locator::Id("live-results"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Chooses the option with `value` on the vote form and submits it.
async fn vote_for(browser: &Client, value: &str) {
    click(
        browser,
        &format!("input[name='option_id'][value='{value}']"),
    )
    .await;
    click(browser, "button[type='submit']").await;
}

#[tokio::test]
async fn a_vote_in_one_browser_moves_the_results_in_another() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let owner = driver.browser().await;
    let voter = driver.browser().await;

    // The owner creates a ballot through the htmx form.
    owner.goto(&app.url("/create")).await.unwrap();
    screenshot(&owner, "create").await;
    type_into(&owner, "measure", "Which editor wins?").await;
    type_into(&owner, "options_raw", "vim, emacs, helix").await;
    click(&owner, "button[type='submit']").await;
    wait_for(&owner, "#vote-section").await;
    let vote_url = owner.current_url().await.unwrap();
    let id = vote_url.path().trim_start_matches("/vote/").to_owned();
    assert_eq!(id.len(), 22, "landed on the vote page: {vote_url}");

    // The owner watches the results.
    owner
        .goto(&app.url(&format!("/results/{id}")))
        .await
        .unwrap();
    wait_for(&owner, ".results[data-seq='0']").await;
    let htmx_loaded = owner.execute("return typeof htmx", vec![]).await.unwrap();
    assert_eq!(htmx_loaded, json!("object"), "htmx runs under the CSP");

    // A second browser votes for helix.
    voter.goto(&app.url(&format!("/vote/{id}"))).await.unwrap();
    screenshot(&voter, "vote").await;
    vote_for(&voter, "3").await;
    wait_for(&voter, ".results").await;
    assert!(
        voter
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/results/")
    );

    // The owner's page moved by itself: no reload, the live partial swapped in.
    wait_for(&owner, ".results[data-seq='1']").await;
    let text = live_text(&owner).await;
    assert!(text.contains("helix"), "{text}");
    assert!(text.contains("100.0%"), "{text}");
    let leading = owner
        .find(Locator::Css(".result-row.leading"))
        .await
        .unwrap();
    assert!(leading.text().await.unwrap().contains("helix"));
    // The indicator says the stream is live; screen readers hear one line.
    let indicator = wait_for(&owner, "#live-indicator:not([hidden]):not(.is-offline)").await;
    assert_eq!(indicator.text().await.unwrap(), "live_feed_active");
    let summary = owner
        .find(Locator::Id("live-summary"))
        .await
        .unwrap()
        .prop("textContent")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(summary, "total_votes: 1. leading: helix");
    screenshot(&owner, "results-live").await;

    // Back on the vote page, the form says the vote stands and takes no
    // other: its button is disabled (the server refuses one anyway).
    voter.goto(&app.url(&format!("/vote/{id}"))).await.unwrap();
    let note = wait_for(&voter, "#vote-section")
        .await
        .text()
        .await
        .unwrap();
    assert!(note.contains("your_vote: helix"), "{note}");
    assert!(note.contains("does not take changes of vote"), "{note}");
    let submit = voter
        .find(Locator::Css("button[type='submit']"))
        .await
        .unwrap();
    assert_eq!(
        submit.attr("disabled").await.unwrap().as_deref(),
        Some("true")
    );
    screenshot(&voter, "already-voted").await;

    owner.close().await.unwrap();
    voter.close().await.unwrap();
}

#[tokio::test]
async fn a_signed_in_owner_runs_a_ballot_with_settings() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let owner = driver.browser().await;
    let voter = driver.browser().await;

    // One click through the development sign-in.
    owner.goto(&app.url("/login")).await.unwrap();
    screenshot(&owner, "login").await;
    click(&owner, "form[action='/auth/mock'] button[type='submit']").await;
    // The logout form exists only once the new page, signed in, has loaded.
    wait_for(&owner, "form[action='/auth/logout']").await;
    let header = owner
        .find(Locator::Css("header"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(header.contains("dev@oponn.local"), "{header}");
    // On a phone, the signed-in header's items that share a line are
    // centred on each other (the logout button and the address too).
    owner.set_window_size(390, 844).await.unwrap();
    let boxes = owner
        .execute(
            "return Array.from(document.querySelectorAll('.site-nav li > *')).map(function (item) { \
               var box = item.getBoundingClientRect(); return [box.top, box.bottom]; })",
            vec![],
        )
        .await
        .unwrap();
    let boxes: Vec<(f64, f64)> = serde_json::from_value(boxes).unwrap();
    assert_eq!(boxes.len(), 4, "{boxes:?}");
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let same_line = a.0 < b.1 && b.0 < a.1;
            let centre = |(top, bottom): (f64, f64)| f64::midpoint(top, bottom);
            assert!(
                !same_line || (centre(*a) - centre(*b)).abs() <= 2.0,
                "items on one line are centred alike: {boxes:?}"
            );
        }
    }
    screenshot(&owner, "signed-in-phone").await;
    owner.set_window_size(1280, 900).await.unwrap();

    // A ballot whose results show only after voting, and whose votes may change.
    owner.goto(&app.url("/create")).await.unwrap();
    type_into(&owner, "measure", "Tabs or spaces?").await;
    type_into(&owner, "options_raw", "tabs, spaces").await;
    owner
        .find(Locator::Css(
            "#results_visibility option[value='after_voting']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&owner, "#allow_vote_change").await;
    click(&owner, "#create-ballot-section button[type='submit']").await;
    wait_for(&owner, "#vote-section").await;
    let id = owner
        .current_url()
        .await
        .unwrap()
        .path()
        .trim_start_matches("/vote/")
        .to_owned();

    // Before voting, the results are hidden from the voter.
    voter
        .goto(&app.url(&format!("/results/{id}")))
        .await
        .unwrap();
    let hidden = wait_for(&voter, ".results-hidden")
        .await
        .text()
        .await
        .unwrap();
    assert!(hidden.contains("once you have voted"), "{hidden}");

    // Vote, then change the vote: the last choice counts.
    voter.goto(&app.url(&format!("/vote/{id}"))).await.unwrap();
    vote_for(&voter, "1").await;
    wait_for(&voter, ".results[data-seq='1']").await;
    voter.goto(&app.url(&format!("/vote/{id}"))).await.unwrap();
    let current = wait_for(&voter, ".alert-info").await.text().await.unwrap();
    assert!(current.contains("your_vote: tabs"), "{current}");
    vote_for(&voter, "2").await;
    wait_for(&voter, ".results[data-seq='2']").await;
    let moved = live_text(&voter).await;
    assert!(moved.contains("total_votes: 1"), "{moved}");
    assert!(moved.contains("spaces"), "{moved}");
    screenshot(&voter, "results-after-voting").await;

    // The owner closes the ballot from the results page.
    owner
        .goto(&app.url(&format!("/results/{id}")))
        .await
        .unwrap();
    screenshot(&owner, "owner-controls").await;
    click(&owner, "form[action$='/close'] button").await;
    // Only the page after the close has an ended status dot.
    wait_for(&owner, ".status-dot.ended").await;
    let status = owner
        .find(Locator::Css(".status-label"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status, "voting closed");

    owner.close().await.unwrap();
    voter.close().await.unwrap();
}

#[tokio::test]
async fn the_dashboard_pages_through_many_ballots() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let owner = driver.browser().await;
    // One more than a page, created through the form as a person would.
    for n in 0..21 {
        owner.goto(&app.url("/create")).await.unwrap();
        type_into(&owner, "measure", &format!("Question number {n}")).await;
        type_into(&owner, "options_raw", "yes, no").await;
        click(&owner, "button[type='submit']").await;
        wait_for(&owner, "#vote-section").await;
    }
    owner.goto(&app.url("/")).await.unwrap();
    wait_for(&owner, "nav.pager a[rel='next']").await;
    let items = owner.find_all(Locator::Css(".ballot-item")).await.unwrap();
    assert_eq!(items.len(), 20);
    screenshot(&owner, "dashboard-page-1").await;
    owner.set_window_size(390, 844).await.unwrap();
    screenshot(&owner, "dashboard-phone").await;
    click(&owner, "nav.pager a[rel='next']").await;
    wait_for(&owner, "nav.pager a[rel='prev']").await;
    let items = owner.find_all(Locator::Css(".ballot-item")).await.unwrap();
    assert_eq!(items.len(), 1);
    screenshot(&owner, "dashboard-page-2-phone").await;
}

#[tokio::test]
async fn a_ranked_ballot_is_voted_with_the_keyboard_alone() {
    let app = spawn_app().await;
    let created = crate::helpers::post_json(
        &crate::helpers::browser(),
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "Which city hosts?", "options": ["Oslo", "Lima", "Pune"],
                 "method": "ranked" }),
    )
    .await;
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let driver = Driver::start().await;
    let voter = driver.browser().await;
    voter.goto(&app.url(&format!("/vote/{id}"))).await.unwrap();
    wait_for(&voter, "select#rank_1").await;
    screenshot(&voter, "vote-ranked").await;
    // Keys only: each rank select takes the typed digit, then Enter on
    // the focused button submits.
    for (option, rank) in [("rank_3", "1"), ("rank_1", "2")] {
        voter
            .find(Locator::Id(option))
            .await
            .unwrap()
            .send_keys(rank)
            .await
            .unwrap();
    }
    voter
        .find(Locator::Css("button[type='submit']"))
        .await
        .unwrap()
        .send_keys(&fantoccini::key::Key::Enter.to_string())
        .await
        .unwrap();
    wait_for(&voter, ".ranked-results").await;
    let text = live_text(&voter).await;
    assert!(text.contains("winner: Pune"), "{text}");
    assert!(text.contains("condorcet_winner: Pune"), "{text}");
    screenshot(&voter, "results-ranked").await;
    voter.set_window_size(390, 844).await.unwrap();
    screenshot(&voter, "results-ranked-phone").await;
    voter.goto(&app.url(&format!("/vote/{id}"))).await.unwrap();
    let first = wait_for(&voter, "select#rank_3").await;
    assert_eq!(first.prop("value").await.unwrap().as_deref(), Some("1"));
    screenshot(&voter, "vote-ranked-phone").await;
    voter.close().await.unwrap();
}

#[tokio::test]
async fn an_approval_ballot_takes_several_checked_options() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let owner = driver.browser().await;
    owner.goto(&app.url("/create")).await.unwrap();
    type_into(&owner, "measure", "Which snacks?").await;
    type_into(&owner, "options_raw", "chips\nfruit\nnuts").await;
    click(&owner, "#method_approval").await;
    type_into(&owner, "max_choices", "2").await;
    screenshot(&owner, "create-approval").await;
    click(&owner, "button[type='submit']").await;
    wait_for(&owner, "input[name='option_ids'][value='3']").await;
    screenshot(&owner, "vote-approval").await;
    click(&owner, "input[name='option_ids'][value='1']").await;
    click(&owner, "input[name='option_ids'][value='3']").await;
    click(&owner, "button[type='submit']").await;
    wait_for(&owner, ".results").await;
    let text = live_text(&owner).await;
    assert!(text.contains("voters: 1"), "{text}");
    let mut shares = Vec::new();
    for share in owner
        .find_all(Locator::Css(".result-percent"))
        .await
        .unwrap()
    {
        shares.push(share.text().await.unwrap());
    }
    assert_eq!(shares, ["100.0%", "0.0%", "100.0%"], "shares of voters");
    owner.set_window_size(390, 844).await.unwrap();
    screenshot(&owner, "results-approval-phone").await;
    owner.close().await.unwrap();
}

#[tokio::test]
async fn an_invited_voter_votes_by_their_link_and_checks_the_receipt() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let owner = driver.browser().await;
    let voter = driver.browser().await;
    let stranger = driver.browser().await;

    // The owner creates an invite-only ballot with two labelled links
    // through the htmx form, and sees the links in its place.
    owner.goto(&app.url("/create")).await.unwrap();
    type_into(&owner, "measure", "Which day for the offsite?").await;
    type_into(&owner, "options_raw", "Monday\nFriday").await;
    owner
        .find(Locator::Css("#eligibility option[value='invited']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    type_into(&owner, "voter_links", "2").await;
    type_into(&owner, "voter_labels", "Ana\nBo").await;
    click(&owner, "#publish_bulletin").await;
    click(&owner, "button[type='submit']").await;
    wait_for(&owner, "#created-heading").await;
    screenshot(&owner, "links-created").await;
    let links: Vec<String> = {
        let mut links = Vec::new();
        for cell in owner
            .find_all(Locator::Css("code.voting-link"))
            .await
            .unwrap()
        {
            links.push(cell.text().await.unwrap());
        }
        links
    };
    assert_eq!(links.len(), 2);
    owner.set_window_size(390, 844).await.unwrap();
    screenshot(&owner, "links-created-phone").await;

    // The voter opens their link and lands on the vote page.
    voter.goto(&links[0]).await.unwrap();
    wait_for(&voter, "#vote-section").await;
    let id = voter
        .current_url()
        .await
        .unwrap()
        .path()
        .trim_start_matches("/vote/")
        .to_owned();
    screenshot(&voter, "vote-invited").await;
    vote_for(&voter, "2").await;
    let receipt = wait_for(&voter, ".receipt-code")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(receipt.len(), 10, "{receipt}");
    screenshot(&voter, "results-receipt").await;
    voter.set_window_size(390, 844).await.unwrap();
    screenshot(&voter, "results-receipt-phone").await;

    // The receipt checks as counted; the bulletin lists it.
    voter
        .goto(&app.url(&format!("/ballots/{id}/receipts/{receipt}")))
        .await
        .unwrap();
    let status = wait_for(&voter, "[data-status]").await;
    assert_eq!(
        status.attr("data-status").await.unwrap().as_deref(),
        Some("counted")
    );
    voter
        .goto(&app.url(&format!("/ballots/{id}/bulletin")))
        .await
        .unwrap();
    let bulletin = wait_for(&voter, "table.bulletin")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        bulletin.contains(&receipt) && bulletin.contains("Friday"),
        "{bulletin}"
    );
    screenshot(&voter, "bulletin-phone").await;

    // A stranger sees the ballot, why they cannot vote, and no live button.
    stranger
        .goto(&app.url(&format!("/vote/{id}")))
        .await
        .unwrap();
    let note = wait_for(&stranger, "#vote-section")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        note.contains("This ballot is open to invited voters only."),
        "{note}"
    );
    let submit = stranger
        .find(Locator::Css("button[type='submit']"))
        .await
        .unwrap();
    assert_eq!(
        submit.attr("disabled").await.unwrap().as_deref(),
        Some("true")
    );
    screenshot(&stranger, "vote-not-invited").await;
    // The used link, opened by the stranger, is refused.
    stranger.goto(&links[0]).await.unwrap();
    let refusal = wait_for(&stranger, ".alert-error")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(refusal, "This voting link has already been used");

    // The owner's list shows use, never the links again.
    owner.set_window_size(1280, 900).await.unwrap();
    owner
        .goto(&app.url(&format!("/ballots/{id}/invitations")))
        .await
        .unwrap();
    let list = wait_for(&owner, "#all-heading").await.text().await.unwrap();
    assert!(list.contains("2 issued, 1 used"), "{list}");
    let source = owner.source().await.unwrap();
    assert!(!source.contains(&links[1][links[1].len() - 32..]));
    screenshot(&owner, "links-list").await;
}

#[tokio::test]
async fn refusals_show_where_the_user_acted_and_owner_actions_are_confirmed() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let owner = driver.browser().await;
    let voter = driver.browser().await;

    // A lost CSRF cookie: the htmx form says so in place, with what to do.
    owner.goto(&app.url("/create")).await.unwrap();
    type_into(&owner, "measure", "Lost cookie?").await;
    type_into(&owner, "options_raw", "yes, no").await;
    owner.delete_cookie("oponn_csrf").await.unwrap();
    click(&owner, "button[type='submit']").await;
    let refusal = wait_for(&owner, ".request-error")
        .await
        .text()
        .await
        .unwrap();
    assert!(refusal.contains("Reload the page"), "{refusal}");
    screenshot(&owner, "create-lost-cookie").await;

    // After a reload the ballot is created.
    owner.goto(&app.url("/create")).await.unwrap();
    type_into(&owner, "measure", "Delete me?").await;
    type_into(&owner, "options_raw", "yes, no").await;
    click(&owner, "button[type='submit']").await;
    wait_for(&owner, "#vote-section").await;
    let id = owner
        .current_url()
        .await
        .unwrap()
        .path()
        .trim_start_matches("/vote/")
        .to_owned();
    voter.goto(&app.url(&format!("/vote/{id}"))).await.unwrap();
    wait_for(&voter, "#vote-section").await;

    // Deleting asks first, then says it is done.
    owner
        .goto(&app.url(&format!("/results/{id}")))
        .await
        .unwrap();
    click(&owner, "a.btn-danger").await;
    wait_for(&owner, "#delete-heading").await;
    screenshot(&owner, "delete-confirm").await;
    click(&owner, "button.btn-danger").await;
    let notice = wait_for(&owner, "[role='status']")
        .await
        .text()
        .await
        .unwrap();
    assert!(notice.contains("The ballot was deleted"), "{notice}");

    // The voter, whose page still shows the ballot, is told by the live
    // stream, with nothing to press: the form is disabled.
    let note = wait_for(&voter, ".state-note:not([hidden])")
        .await
        .text()
        .await
        .unwrap();
    assert!(note.contains("This ballot was deleted"), "{note}");
    let submit = voter
        .find(Locator::Css("button[type='submit']"))
        .await
        .unwrap();
    assert_eq!(
        submit.attr("disabled").await.unwrap().as_deref(),
        Some("true")
    );
    screenshot(&voter, "vote-deleted-meanwhile").await;

    // A page that missed the news (its stream stopped) still hears it
    // from the refusal, in place.
    voter.goto(&app.url("/create")).await.unwrap();
    wait_for(&voter, "#create-ballot-section").await;
    let other = app
        .simple_ballot(&crate::helpers::browser(), "Deleted while away?")
        .await;
    voter
        .goto(&app.url(&format!("/vote/{other}")))
        .await
        .unwrap();
    wait_for(&voter, "#vote-section").await;
    voter
        .execute(
            "document.querySelector('[sse-connect]')['htmx-internal-data'].sseEventSource.close()",
            vec![],
        )
        .await
        .unwrap();
    let gone = app
        .oponn
        .service()
        .ballot(&oponn_core::domain::BallotId::parse(&other).unwrap())
        .await
        .unwrap();
    app.oponn
        .service()
        .delete_ballot(&gone.id(), gone.owner().unwrap())
        .await
        .unwrap();
    vote_for(&voter, "1").await;
    let refusal = wait_for(&voter, ".request-error")
        .await
        .text()
        .await
        .unwrap();
    assert!(refusal.contains("deleted"), "{refusal}");
}

/// The value of `property` of the element `css` finds.
async fn property(browser: &Client, css: &str, property: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .prop(property)
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Waits until the element `css` finds has `expected` as `property`.
async fn wait_for_property(browser: &Client, css: &str, name: &str, expected: &str) {
    wait_for_property_where(browser, css, name, expected, |now| now == expected).await;
}

/// Waits until `property` of the element `css` finds passes `test`
/// (`wanted` says what it waits for); returns that value.
async fn wait_for_property_where(
    browser: &Client,
    css: &str,
    name: &str,
    wanted: &str,
    test: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let now = property(browser, css, name).await;
        if test(&now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} {name}: {now:?}, not {wanted}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_ballot_is_shared_presented_watched_and_closed_with_every_page_keeping_up() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let owner = driver.browser().await;
    let voter = driver.browser().await;
    let waiting = driver.browser().await;
    let watcher = driver.browser().await;

    // Created: the owner lands on the share view above the vote form.
    owner.goto(&app.url("/create")).await.unwrap();
    type_into(&owner, "measure", "Which talk first?").await;
    type_into(&owner, "options_raw", "Rust in production\nHTMX, honestly\nA very long talk title that goes on and on to test wrapping").await;
    click(&owner, "button[type='submit']").await;
    wait_for(&owner, "#share-section").await;
    let id = owner
        .current_url()
        .await
        .unwrap()
        .path()
        .trim_start_matches("/vote/")
        .to_owned();
    let vote_link = property(&owner, "#share-vote-link", "value").await;
    assert_eq!(vote_link, app.url(&format!("/vote/{id}")));
    screenshot(&owner, "share").await;

    // Copy: the button says it did, and so does the status line.
    click(&owner, ".copy-button[data-copy-from='share-vote-link']").await;
    let copied = wait_for(&owner, ".copy-status:not(:empty)")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(copied, format!("Copied: {vote_link}"));
    // ("Copied" is said only once the clipboard took the text.)
    // The QR code shows, and reads back to the link.
    let width = owner
        .execute(
            "return document.querySelector('img.qr-code').naturalWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        width.as_u64().unwrap_or(0) > 0,
        "the QR image loaded: {width}"
    );
    let svg = crate::helpers::get_text(
        &crate::helpers::browser(),
        &app.url(&format!("/ballots/{id}/qr.svg")),
    )
    .await;
    assert_eq!(crate::share::read_qr(&svg), vote_link);
    owner.set_window_size(390, 844).await.unwrap();
    screenshot(&owner, "share-phone").await;
    owner.set_window_size(1280, 900).await.unwrap();

    // The owner presents; a voter votes; the bars move on the projector.
    owner
        .goto(&app.url(&format!("/results/{id}/present")))
        .await
        .unwrap();
    wait_for(&owner, ".results[data-seq='0']").await;
    waiting.goto(&vote_link).await.unwrap();
    wait_for(&waiting, "#vote-section").await;
    watcher
        .goto(&app.url(&format!("/results/{id}")))
        .await
        .unwrap();
    wait_for(&watcher, "#live-indicator:not(.is-offline)").await;
    voter.goto(&vote_link).await.unwrap();
    vote_for(&voter, "2").await;
    wait_for(&owner, ".results[data-seq='1']").await;
    wait_for(&watcher, ".results[data-seq='1']").await;
    watcher.set_window_size(390, 844).await.unwrap();
    screenshot(&watcher, "results-phone").await;
    watcher.set_window_size(1280, 900).await.unwrap();
    assert!(live_text(&owner).await.contains("HTMX, honestly"));
    screenshot(&owner, "present").await;
    owner.set_window_size(390, 844).await.unwrap();
    screenshot(&owner, "present-phone").await;
    owner.set_window_size(1280, 900).await.unwrap();

    // The countdown to the default hour's end ticks on the open pages.
    // (The server says "ends in 1 hour"; the script, "1h 00m" for the
    // first second, then "59m 59s".)
    let ticking = |label: &str| {
        let countdown = label.strip_prefix("ends in ").unwrap_or_default();
        let (minutes, seconds) = countdown.split_once("m ").unwrap_or_default();
        minutes.parse::<u32>().is_ok()
            && seconds.len() == 3
            && seconds.ends_with('s')
            && seconds[..2].parse::<u32>().is_ok()
    };
    wait_for_property_where(
        &waiting,
        ".ballot-state .status-label",
        "textContent",
        "a countdown in minutes and seconds",
        ticking,
    )
    .await;

    // A keyboard user sits on an option when the ballot closes.
    waiting
        .execute(
            "document.querySelector(\"input[name='option_id']\").focus()",
            vec![],
        )
        .await
        .unwrap();

    // The owner closes the ballot: every open page changes by itself.
    owner
        .goto(&app.url(&format!("/results/{id}")))
        .await
        .unwrap();
    click(&owner, ".close-form button").await;
    wait_for(&owner, "[role='status']").await;
    wait_for(&waiting, ".ballot-state[data-status='ended']").await;
    wait_for_property(
        &waiting,
        ".ballot-state .status-label",
        "textContent",
        "voting closed",
    )
    .await;
    let note = wait_for(&waiting, ".state-note:not([hidden])")
        .await
        .text()
        .await
        .unwrap();
    assert!(note.contains("voting_closed"), "{note}");
    let submit = waiting
        .find(Locator::Css("button[type='submit']"))
        .await
        .unwrap();
    assert_eq!(
        submit.attr("disabled").await.unwrap().as_deref(),
        Some("true")
    );
    let options = waiting
        .find(Locator::Css("fieldset.options"))
        .await
        .unwrap();
    assert_eq!(
        options.attr("disabled").await.unwrap().as_deref(),
        Some("true")
    );
    // Focus moved to the note that says why, not to the page.
    let focused = waiting
        .execute("return document.activeElement.className", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!("alert-info state-note"));
    screenshot(&waiting, "vote-closed-live").await;
    waiting.set_window_size(390, 844).await.unwrap();
    screenshot(&waiting, "vote-closed-live-phone").await;
    wait_for(&watcher, ".ballot-state[data-status='ended']").await;
    wait_for_property(
        &watcher,
        "#live-indicator .live-text",
        "textContent",
        "live_feed_ended: final results",
    )
    .await;
    let summary = property(&watcher, ".state-summary", "textContent").await;
    assert_eq!(summary, "Voting has closed.");
    screenshot(&watcher, "results-closed-live").await;

    for browser in [owner, voter, waiting, watcher] {
        browser.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_scheduled_ballot_counts_down_and_opens_its_form_by_itself() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let voter = driver.browser().await;
    let owner = crate::helpers::browser();
    // The test clock stands still; the ballot opens 3 seconds after it.
    let opens = (oponn_core::ports::Clock::now(app.oponn.clock()) + time::Duration::seconds(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let id = app
        .create_ballot(
            &owner,
            &[
                ("measure", "Opens soon?"),
                ("options_raw", "a, b"),
                ("start_time_type", "scheduled"),
                ("scheduled_start_time", &opens),
            ],
        )
        .await;
    voter.goto(&app.url(&format!("/vote/{id}"))).await.unwrap();
    wait_for(&voter, ".ballot-state[data-status='pending']").await;
    let label = property(&voter, ".ballot-state .status-label", "textContent").await;
    assert!(
        label.starts_with("starts in ") && label.ends_with('s'),
        "{label}"
    );
    let options = voter.find(Locator::Css("fieldset.options")).await.unwrap();
    assert_eq!(
        options.attr("disabled").await.unwrap().as_deref(),
        Some("true")
    );
    screenshot(&voter, "vote-countdown").await;
    // The server's timer sends the opening when it is due.
    app.oponn.clock().advance(time::Duration::seconds(3));
    wait_for(&voter, ".ballot-state[data-status='active']").await;
    let note = wait_for(&voter, ".state-note:not([hidden])")
        .await
        .text()
        .await
        .unwrap();
    assert!(note.contains("you can vote now"), "{note}");
    let submit = voter
        .find(Locator::Css("button[type='submit']"))
        .await
        .unwrap();
    assert_eq!(submit.attr("disabled").await.unwrap(), None);
    vote_for(&voter, "1").await;
    wait_for(&voter, ".results").await;
    voter.close().await.unwrap();
}
