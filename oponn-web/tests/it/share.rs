//! Sharing and presenting: the share view after creating, the QR code
//! (read back as a phone would), the presenter view, and link previews.

use crate::helpers::{
    TestApp, browser, get_text, header, location, spawn_app, spawn_app_with, unescape,
};

/// Reads the QR code in an SVG as the server draws it (one path of
/// `M{x} {y}h{w}v{h}H{x}V{y}` rectangles on a white square) back to its
/// text, by drawing it as a bitmap and scanning that.
pub(crate) fn read_qr(svg: &str) -> String {
    let number_after = |text: &str, key: &str| -> usize {
        let start = text.find(key).unwrap() + key.len();
        text[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let side = number_after(svg, "width=\"");
    let path_start = svg.find(" d=\"").unwrap() + 4;
    let path = &svg[path_start..svg[path_start..].find('"').unwrap() + path_start];
    let mut dark = vec![false; side * side];
    for rect in path.split('M').filter(|rect| !rect.is_empty()) {
        let numbers: Vec<usize> = rect
            .split(|c: char| !c.is_ascii_digit())
            .filter(|part| !part.is_empty())
            .map(|part| part.parse().unwrap())
            .collect();
        let [left, top, width, height, ..] = numbers[..] else {
            panic!("a rectangle of four numbers: {rect}");
        };
        for y in top..top + height {
            for x in left..left + width {
                dark[y * side + x] = true;
            }
        }
    }
    let mut image = rqrr::PreparedImage::prepare_from_bitmap(side, side, |x, y| dark[y * side + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

/// Creates a ballot through the form with `owner`, following the redirect
/// to its vote page; returns the id and that page.
async fn create_and_land(app: &TestApp, owner: &reqwest::Client) -> (String, String) {
    let created = app
        .form_post(
            owner,
            "/create",
            &[
                ("measure", "Where to eat?"),
                ("options_raw", "Ramen\nTacos, al pastor"),
            ],
        )
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 303);
    let landing = location(&created);
    let id = landing.trim_start_matches("/vote/").to_owned();
    (id, app.page_text(owner, &landing).await)
}

#[tokio::test]
async fn the_owner_lands_on_a_share_view_once_and_its_qr_code_reads_back_to_the_vote_link() {
    let app = spawn_app().await;
    let owner = browser();
    let (id, page) = create_and_land(&app, &owner).await;
    let vote_link = app.url(&format!("/vote/{id}"));
    let page = unescape(&page);
    assert!(page.contains(r#"id="share-section""#), "{page}");
    assert!(
        page.contains(&format!(
            r#"id="share-vote-link" value="{vote_link}" readonly"#
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            r#"value="{}" readonly"#,
            app.url(&format!("/results/{id}"))
        )),
        "{page}"
    );
    assert!(
        page.contains(r#"data-copy-from="share-vote-link" hidden>copy_link"#),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"src="/ballots/{id}/qr.svg""#)),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"href="/results/{id}/present""#)),
        "{page}"
    );
    assert!(page.contains("Your ballot is ready."), "{page}");
    // The vote form is still there, below.
    assert!(page.find("share-section").unwrap() < page.find(r#"id="vote-section""#).unwrap());

    // Once: the next visit is the plain vote page, and so is a voter's.
    let again = app.page_text(&owner, &format!("/vote/{id}")).await;
    assert!(!again.contains("share-section"), "{again}");
    let voter = app.page_text(&browser(), &format!("/vote/{id}")).await;
    assert!(!voter.contains("share-section"), "{voter}");
    // The share page keeps it for anyone, any time.
    let share = unescape(
        &app.page_text(&browser(), &format!("/ballots/{id}/share"))
            .await,
    );
    assert!(
        share.contains(&format!(r#"value="{vote_link}""#)),
        "{share}"
    );
    assert!(share.contains(r#"<h1 id="share-heading""#), "{share}");

    let qr = browser()
        .get(app.url(&format!("/ballots/{id}/qr.svg")))
        .send()
        .await
        .unwrap();
    assert_eq!(qr.status(), 200);
    assert_eq!(header(qr.headers(), "content-type"), "image/svg+xml");
    let svg = qr.text().await.unwrap();
    assert_eq!(read_qr(&svg), vote_link);
}

#[tokio::test]
async fn links_that_leave_the_site_use_the_public_url_and_never_a_hostile_host() {
    let app = spawn_app_with(|config| {
        config.public_url = Some("https://vote.example.org".to_owned());
    })
    .await;
    let owner = browser();
    let (id, page) = create_and_land(&app, &owner).await;
    let page = unescape(&page);
    let public = format!("https://vote.example.org/vote/{id}");
    assert!(page.contains(&format!(r#"value="{public}""#)), "{page}");
    assert!(
        page.contains(&format!(r#"<meta property="og:url" content="{public}">"#)),
        "{page}"
    );
    let svg = get_text(&browser(), &app.url(&format!("/ballots/{id}/qr.svg"))).await;
    assert_eq!(read_qr(&svg), public);

    // Without one, the request's Host, when it is a plain host name.
    let plain = spawn_app().await;
    let id = plain.simple_ballot(&browser(), "hosts?").await;
    for (host, origin) in [
        ("vote.example.net:8443", "http://vote.example.net:8443"),
        (
            r#"evil.example"><script>alert(1)</script>"#,
            "http://localhost",
        ),
        ("evil.example/phish?x=", "http://localhost"),
    ] {
        let page = browser()
            .get(plain.url(&format!("/ballots/{id}/share")))
            .header("Host", host)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!page.contains("<script>alert"), "{host}");
        let page = unescape(&page);
        assert!(
            page.contains(&format!(r#"value="{origin}/vote/{id}""#)),
            "{host}: {page}"
        );
    }
}

#[tokio::test]
async fn ballot_pages_carry_link_previews_with_the_instances_own_image() {
    let app = spawn_app().await;
    let owner = browser();
    let (id, _) = create_and_land(&app, &owner).await;
    for path in [
        format!("/vote/{id}"),
        format!("/results/{id}"),
        format!("/ballots/{id}/share"),
        format!("/results/{id}/present"),
    ] {
        let page = unescape(&app.page_text(&owner, &path).await);
        assert!(
            page.contains("<title>Where to eat? · oponn</title>"),
            "{path}: {page}"
        );
        for tag in [
            r#"<meta property="og:title" content="Where to eat?">"#.to_owned(),
            r#"<meta name="twitter:card" content="summary_large_image">"#.to_owned(),
            r#"<meta property="og:description" content="Vote on oponn: Ramen · Tacos, al pastor. Results update live.">"#.to_owned(),
            format!(r#"<meta property="og:image" content="{}">"#, app.url("/static/img/preview.png")),
            format!(r#"<meta name="twitter:image" content="{}">"#, app.url("/static/img/preview.png")),
        ] {
            assert!(page.contains(&tag), "{path}: {tag}");
        }
    }
    let image = browser()
        .get(app.url("/static/img/preview.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(header(image.headers(), "content-type"), "image/png");
    let bytes = image.bytes().await.unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let size = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(
        (size(16), size(20)),
        (1200, 630),
        "the size the tags declare"
    );
    // Pages that are no ballot's carry none.
    let home = app.page_text(&owner, "/").await;
    assert!(!home.contains("og:title"), "{home}");
}

#[tokio::test]
async fn the_presenter_view_shows_the_question_live_results_and_how_to_vote() {
    let app = spawn_app().await;
    let owner = browser();
    let (id, _) = create_and_land(&app, &owner).await;
    assert_eq!(app.vote_for(&browser(), &id, "1").await, 303);
    let page = unescape(
        &app.page_text(&browser(), &format!("/results/{id}/present"))
            .await,
    );
    assert!(page.contains(r#"<body class="presenting""#), "{page}");
    assert!(!page.contains("site-header"), "no site chrome: {page}");
    assert!(
        page.contains(r#"<h1 id="present-heading" class="present-measure">Where to eat?</h1>"#),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            r#"sse-connect="/ballots/{id}/live-results?after=1" sse-close="final" sse-swap="results,state""#
        )),
        "{page}"
    );
    assert!(
        page.contains(r#"<span class="result-count">1</span>"#),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"src="/ballots/{id}/qr.svg""#)),
        "{page}"
    );
    // The short link breaks at the slash before the id, not mid-id.
    let host = app.url("").replace("http://", "");
    assert!(
        page.contains(&format!(
            r#"<p class="present-link">{host}/vote/<wbr>{id}</p>"#
        )),
        "{page}"
    );

    // Results hidden until the close: the view waits on the state stream.
    let hidden = app
        .create_ballot(
            &owner,
            &[
                ("measure", "secret?"),
                ("options_raw", "a, b"),
                ("results_visibility", "after_close"),
            ],
        )
        .await;
    let page = unescape(
        &app.page_text(&browser(), &format!("/results/{hidden}/present"))
            .await,
    );
    assert!(
        page.contains(&format!(r#"sse-connect="/ballots/{hidden}/live-state""#)),
        "{page}"
    );
    assert!(page.contains("results_hidden"), "{page}");
    assert!(
        page.contains(&format!(r#"src="/ballots/{hidden}/qr.svg""#)),
        "{page}"
    );
}

#[tokio::test]
async fn unknown_ballots_have_no_share_view_qr_code_or_presenter_view() {
    let app = spawn_app().await;
    for path in [
        "/ballots/00000000000000000000000000/share",
        "/ballots/00000000000000000000000000/qr.svg",
        "/results/00000000000000000000000000/present",
        "/ballots/not-an-id/qr.svg",
        "/results/not-an-id/present",
    ] {
        let answer = browser().get(app.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn an_invite_only_ballot_offers_no_public_link_to_vote() {
    let app = spawn_app().await;
    let owner = browser();
    let created = app
        .form_post(
            &owner,
            "/create",
            &[
                ("measure", "Members only?"),
                ("options_raw", "a, b"),
                ("eligibility", "invited"),
            ],
        )
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 303);
    let id = location(&created)
        .trim_start_matches("/ballots/")
        .trim_end_matches("/invitations")
        .to_owned();
    let share = unescape(&app.page_text(&owner, &format!("/ballots/{id}/share")).await);
    assert!(!share.contains("share-vote-link"), "{share}");
    assert!(!share.contains("qr.svg"), "{share}");
    assert!(
        share.contains(&format!(
            r#"<a href="/ballots/{id}/invitations">voting_links</a>"#
        )),
        "{share}"
    );
    let present = unescape(
        &app.page_text(&owner, &format!("/results/{id}/present"))
            .await,
    );
    assert!(!present.contains("qr.svg"), "{present}");
    assert!(
        present.contains("vote with the personal link you were sent"),
        "{present}"
    );
}

#[tokio::test]
async fn a_write_in_never_speaks_for_the_ballot_in_its_link_preview() {
    let app = spawn_app().await;
    let owner = browser();
    let id = app
        .create_ballot(
            &owner,
            &[
                ("measure", "Lunch?"),
                ("options_raw", "Soup, Salad"),
                ("allow_write_in", "on"),
            ],
        )
        .await;
    let voted = app
        .vote(
            &browser(),
            &id,
            &[
                ("option_id", "__write_in__"),
                ("write_in_value", "Vote at evil example"),
            ],
        )
        .await;
    assert_eq!(voted.status(), 303);
    let page = unescape(&app.page_text(&browser(), &format!("/vote/{id}")).await);
    assert!(
        page.contains("Vote at evil example"),
        "the write-in is an option on the page"
    );
    assert!(
        page.contains(r#"<meta property="og:description" content="Vote on oponn: Soup · Salad. Results update live.">"#),
        "{page}"
    );
}
