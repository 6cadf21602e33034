//! CSRF, escaping and the security headers.

use crate::helpers::{browser, csrf_token, header, set_cookies, spawn_app, spawn_app_with};

#[tokio::test]
async fn posts_without_a_valid_csrf_token_are_forbidden() {
    let app = spawn_app().await;
    let visitor = browser();
    let id = app.simple_ballot(&visitor, "csrf?").await;
    let create = [("measure", "forged"), ("options_raw", "a, b")];

    let missing = visitor
        .post(app.url("/create"))
        .form(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 403);
    let forged = visitor
        .post(app.url("/create"))
        .form(&[
            ("X-CSRF-Token", "Zm9yZ2Vk"),
            ("measure", "forged"),
            ("options_raw", "a, b"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // A real token, but from another browser's cookie.
    let stolen = csrf_token(&browser(), &app.url("/create")).await;
    let foreign = visitor
        .post(app.url(&format!("/vote/{id}")))
        .form(&[("X-CSRF-Token", stolen.as_str()), ("option_id", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    // The header works as well as the field (htmx sends it).
    let token = csrf_token(&visitor, &app.url("/create")).await;
    let by_header = visitor
        .post(app.url(&format!("/vote/{id}")))
        .header("X-CSRF-Token", token)
        .form(&[("option_id", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 303);
    let tally = app
        .oponn
        .service()
        .tally(&oponn_core::domain::BallotId::parse(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(tally.total(), 1, "only the vote with a valid token counted");
}

#[tokio::test]
async fn a_browser_keeps_one_csrf_secret_so_forms_open_in_other_tabs_stay_valid() {
    let app = spawn_app().await;
    let visitor = browser();
    let id = app.simple_ballot(&visitor, "tabs").await;
    let vote_page = format!("/vote/{id}");
    let first_tab = csrf_token(&visitor, &app.url(&vote_page)).await;
    // Other tabs load pages meanwhile; none is sent the cookie again, so
    // none can replace the secret the first tab's form was made for.
    for path in [
        "/create",
        vote_page.as_str(),
        &format!("/results/{id}"),
        "/",
    ] {
        let response = app.get(&visitor, path).await;
        assert_eq!(response.status(), 200, "{path}");
        let cookies = set_cookies(&response);
        assert!(
            !cookies
                .iter()
                .any(|cookie| cookie.starts_with("oponn_csrf=")),
            "{path} set the CSRF cookie again: {cookies:?}"
        );
    }
    let second_tab = csrf_token(&visitor, &app.url(&vote_page)).await;
    assert_ne!(first_tab, second_tab, "each page masks the secret afresh");
    let vote = visitor
        .post(app.url(&vote_page))
        .form(&[("X-CSRF-Token", first_tab.as_str()), ("option_id", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(vote.status(), 303, "the first tab's form still counts");
}

#[tokio::test]
async fn a_forged_csrf_cookie_is_refused_and_replaced() {
    let app = spawn_app().await;
    // No cookie store: this client sends exactly the cookie it is given.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let create = [("measure", "forged cookie"), ("options_raw", "a, b")];
    for forged in [
        "AAAA",
        &"A".repeat(96),
        &"A".repeat(4000),
        "%FF",
        &"A-_".repeat(32),
    ] {
        let page = client
            .get(app.url("/create"))
            .header("cookie", format!("oponn_csrf={forged}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let cookies = set_cookies(&page);
        let issued = cookies
            .iter()
            .find_map(|cookie| cookie.strip_prefix("oponn_csrf="))
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("a forged cookie is replaced: {cookies:?}"))
            .to_owned();
        let html = page.text().await.unwrap();
        let token = crate::helpers::hidden_value(&html, "X-CSRF-Token").unwrap();
        let refused = client
            .post(app.url("/create"))
            .header("cookie", format!("oponn_csrf={forged}"))
            .form(&[&[("X-CSRF-Token", token.as_str())][..], &create].concat())
            .send()
            .await
            .unwrap();
        assert_eq!(
            refused.status(),
            403,
            "the token is not the forged cookie's"
        );
        let accepted = client
            .post(app.url("/create"))
            .header("cookie", format!("oponn_csrf={issued}"))
            .form(&[&[("X-CSRF-Token", token.as_str())][..], &create].concat())
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 303, "the issued cookie and its token");
    }
}

#[tokio::test]
async fn in_production_the_csrf_cookie_is_host_only_and_secure() {
    let app =
        spawn_app_with(|config| config.environment = oponn_web::Environment::Production).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(app.url("/create")).send().await.unwrap();
    let cookies = set_cookies(&page);
    let cookie = cookies
        .iter()
        .find(|cookie| cookie.starts_with("__Host-oponn_csrf="))
        .unwrap_or_else(|| panic!("a __Host- cookie: {cookies:?}"));
    // What browsers require of a `__Host-` cookie: Secure, path `/`, no
    // domain; so a sibling subdomain cannot set one.
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert!(
        !cookies
            .iter()
            .any(|cookie| cookie.starts_with("oponn_csrf="))
    );
    let value = cookie
        .trim_start_matches("__Host-oponn_csrf=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let token = crate::helpers::hidden_value(&page.text().await.unwrap(), "X-CSRF-Token").unwrap();
    let create = [
        ("X-CSRF-Token", token.as_str()),
        ("measure", "host only"),
        ("options_raw", "a, b"),
    ];
    let without_prefix = client
        .post(app.url("/create"))
        .header("cookie", format!("oponn_csrf={value}"))
        .form(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(
        without_prefix.status(),
        403,
        "only the prefixed cookie counts"
    );
    let accepted = client
        .post(app.url("/create"))
        .header("cookie", format!("__Host-oponn_csrf={value}"))
        .form(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 303);
}

#[tokio::test]
async fn skip_csrf_turns_the_check_off_outside_production() {
    let app = spawn_app_with(|config| config.skip_csrf = true).await;
    let response = browser()
        .post(app.url("/create"))
        .form(&[("measure", "no token"), ("options_raw", "a, b")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
}

#[tokio::test]
async fn every_form_carries_the_csrf_field() {
    let app = spawn_app().await;
    let owner = browser();
    let id = app.simple_ballot(&owner, "forms").await;
    for page in ["/create".to_owned(), format!("/vote/{id}")] {
        let html = app.page_text(&owner, &page).await;
        let forms = html.matches("<form").count();
        assert!(forms > 0, "{page} has a form");
        assert_eq!(
            html.matches("name=\"X-CSRF-Token\"").count(),
            forms,
            "{page}"
        );
    }
}

#[tokio::test]
async fn hostile_text_is_escaped_on_every_page() {
    let app = spawn_app().await;
    let owner = browser();
    let script = "<script>alert(1)</script>";
    let attribute = "\" onmouseover=\"alert(2)";
    let id = app
        .create_ballot(
            &owner,
            &[
                ("measure", &format!("{script} measure")),
                ("options_raw", &format!("{attribute}, {script}")),
                ("allow_write_in", "on"),
            ],
        )
        .await;
    let voted = app
        .vote(
            &owner,
            &id,
            &[
                ("option_id", "__write_in__"),
                ("write_in_value", "<img src=x onerror=alert(3)>"),
            ],
        )
        .await;
    assert_eq!(voted.status(), 303);
    let mut pages = Vec::new();
    for path in [
        "/".to_owned(),
        format!("/vote/{id}"),
        format!("/results/{id}"),
    ] {
        let html = app.page_text(&owner, &path).await;
        pages.push((path, html));
    }
    let mut stream = app.live_results(&owner, &id, None).await;
    pages.push(("live-results".to_owned(), stream.next().await.data));
    for (path, html) in pages {
        assert!(!html.contains("<script>alert"), "{path}: raw script");
        assert!(
            !html.contains("\" onmouseover=\""),
            "{path}: attribute injection"
        );
        assert!(!html.contains("<img src=x"), "{path}: raw tag");
        assert!(
            html.contains("&lt;script&gt;"),
            "{path}: the text is shown escaped"
        );
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let visitor = browser();
    let id = app.simple_ballot(&visitor, "headers").await;
    for path in [
        "/".to_owned(),
        "/create".to_owned(),
        format!("/vote/{id}"),
        format!("/results/{id}"),
        "/vote/AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "/static/css/oponn.css".to_owned(),
        format!("/api/v1/ballots/{id}"),
        "/api/docs".to_owned(),
        "/livez".to_owned(),
    ] {
        let response = app.get(&visitor, &path).await;
        let headers = response.headers();
        let csp = header(headers, "content-security-policy");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert_eq!(
            header(headers, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert!(headers.contains_key("referrer-policy"), "{path}");
    }
}

#[tokio::test]
async fn cookies_are_http_only_and_same_site_lax() {
    let app = spawn_app().await;
    let id = app.simple_ballot(&browser(), "cookies").await;
    let mut cookies: Vec<String> = Vec::new();
    for path in ["/create".to_owned(), format!("/vote/{id}")] {
        let response = app.get(&browser(), &path).await;
        cookies.extend(set_cookies(&response));
    }
    assert!(
        cookies.iter().any(|c| c.starts_with("oponn_voter=")),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("oponn_csrf=")),
        "{cookies:?}"
    );
    for cookie in &cookies {
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(
            !cookie.contains("Secure"),
            "no Secure outside production: {cookie}"
        );
    }
}

#[tokio::test]
async fn pages_have_no_inline_scripts_or_styles() {
    let app = spawn_app().await;
    let owner = browser();
    let id = app.simple_ballot(&owner, "inline").await;
    for path in [
        "/".to_owned(),
        "/create".to_owned(),
        format!("/vote/{id}"),
        format!("/results/{id}"),
        "/api/docs".to_owned(),
    ] {
        let html = app.page_text(&owner, &path).await;
        assert!(!html.contains("style=\""), "{path}: style attribute");
        assert!(!html.contains("<style"), "{path}: style element");
        for script in html.split("<script").skip(1) {
            let tag_end = script.find('>').unwrap();
            assert!(script[..tag_end].contains("src="), "{path}: inline script");
            assert!(
                script[tag_end + 1..].starts_with("</script>"),
                "{path}: script body"
            );
        }
    }
}

#[tokio::test]
async fn htmx_and_its_sse_extension_are_served_from_the_binary() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/static/vendor/htmx/htmx.min.js", "javascript"),
        ("/static/vendor/htmx-ext-sse/sse.js", "javascript"),
        ("/static/css/oponn.css", "css"),
        (
            "/static/vendor/swagger-ui/swagger-ui-bundle.js",
            "javascript",
        ),
    ] {
        let response = app.get(&browser(), path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            header(response.headers(), "content-type").contains(kind),
            "{path}"
        );
        assert!(response.bytes().await.unwrap().len() > 100, "{path}");
    }
    let html = app.page_text(&browser(), "/create").await;
    assert!(
        !html.contains("src=\"http"),
        "no script from another origin"
    );
}
