//! Sign-in end to end: the real OAuth code path (oauth2's authorization
//! URL, state, PKCE and code exchange, then the user-info calls) against a
//! fake provider started inside each test; the mock provider; logout.

use oponn_web::Environment;
use reqwest::{Client, Response};

use crate::fake_oauth::{FakeIdentity, FakeProvider};
use crate::helpers::{TestApp, browser, location, set_cookies, spawn_app_with, unescape};

/// The `Set-Cookie` value for `name` in `response`, if any.
fn cookie_set(response: &Response, name: &str) -> Option<String> {
    set_cookies(response)
        .into_iter()
        .find(|cookie| cookie.starts_with(&format!("{name}=")))
}

/// Whether `response` sets a live session cookie (not one that clears it).
fn sets_session(response: &Response) -> bool {
    cookie_set(response, "oponn_session").is_some_and(|cookie| !cookie.contains("Max-Age=0"))
}

/// Starts a sign-in at `provider` on the app: the 303 to the provider's
/// authorization URL.
async fn start_sign_in(app: &TestApp, browser: &Client, provider: &str, next: &str) -> String {
    let response = browser
        .get(app.url(&format!("/auth/{provider}/login")))
        .query(&[("next", next)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "starting a {provider} sign-in");
    location(&response)
}

/// Follows the provider's authorization URL: the provider's 303 back to
/// the app's callback, as a URL on the test app.
async fn at_provider(app: &TestApp, browser: &Client, authorize_url: &str) -> String {
    let response = browser.get(authorize_url).send().await.unwrap();
    assert_eq!(
        response.status(),
        303,
        "the provider answers {authorize_url}"
    );
    FakeProvider::back_to_app(&app.address, &location(&response))
}

/// The whole flow: start, authorize at the provider, come back; returns
/// the app's answer to the callback.
async fn sign_in(app: &TestApp, browser: &Client, provider: &str, next: &str) -> Response {
    let authorize_url = start_sign_in(app, browser, provider, next).await;
    let callback = at_provider(app, browser, &authorize_url).await;
    browser.get(callback).send().await.unwrap()
}

/// Whom the login page says is signed in on `browser`.
async fn signed_in_as(app: &TestApp, browser: &Client) -> Option<String> {
    let html = app.page_text(browser, "/login").await;
    let (_, after) = html.split_once("signed_in_as <strong>")?;
    Some(after.split_once("</strong>")?.0.to_owned())
}

/// An app whose only provider is `fake`, as GitHub.
async fn app_with_github(fake: &FakeProvider) -> TestApp {
    let github = fake.github();
    spawn_app_with(|config| config.github = Some(github)).await
}

/// An app whose only provider is `fake`, as Google.
async fn app_with_google(fake: &FakeProvider) -> TestApp {
    let google = fake.google();
    spawn_app_with(|config| config.google = Some(google)).await
}

#[tokio::test]
async fn github_sign_in_runs_the_oauth_flow_and_starts_a_seven_day_session() {
    let fake = FakeProvider::start(FakeIdentity::verified("583231", "Octo@Example.org")).await;
    let app = app_with_github(&fake).await;
    let browser = browser();

    let authorize_url = start_sign_in(&app, &browser, "github", "/create").await;
    assert!(
        authorize_url.starts_with(&fake.github().auth_url),
        "{authorize_url}"
    );
    let callback = at_provider(&app, &browser, &authorize_url).await;
    let sent = fake.last_authorization();
    assert_eq!(sent["scope"], "read:user user:email");
    assert_eq!(sent["code_challenge_method"], "S256");
    assert_eq!(sent["redirect_uri"], fake.github().redirect_url);
    let response = browser.get(callback).send().await.unwrap();

    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        "/create",
        "back where the sign-in started"
    );
    let session = cookie_set(&response, "oponn_session").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Max-Age=604800", "Path=/"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    let flow = cookie_set(&response, "oponn_oauth").expect("the flow cookie is cleared");
    assert!(flow.contains("Max-Age=0"), "{flow}");
    assert_eq!(
        fake.seen(),
        ["/authorize", "/token", "/user", "/user/emails"],
        "oponn exchanged the code and asked who signed in, server to server"
    );
    assert_eq!(fake.unexchanged_codes(), 0);
    assert_eq!(
        signed_in_as(&app, &browser).await.as_deref(),
        Some("octo@example.org")
    );
    let page = app.page_text(&browser, "/login").await;
    assert!(
        page.contains("action=\"/auth/logout\""),
        "the header offers logout"
    );
}

#[tokio::test]
async fn google_sign_in_runs_the_oauth_flow() {
    let fake = FakeProvider::start(FakeIdentity::verified(
        "10769150350006150715113",
        "ada@example.org",
    ))
    .await;
    let app = app_with_google(&fake).await;
    let browser = browser();

    let response = sign_in(&app, &browser, "google", "/").await;

    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/");
    assert!(sets_session(&response));
    assert_eq!(fake.last_authorization()["scope"], "openid email profile");
    assert_eq!(fake.seen(), ["/authorize", "/token", "/userinfo"]);
    assert_eq!(
        signed_in_as(&app, &browser).await.as_deref(),
        Some("ada@example.org")
    );
}

#[tokio::test]
async fn the_same_email_through_github_and_google_is_one_account() {
    let github = FakeProvider::start(FakeIdentity::verified("42", "grace@example.org")).await;
    let google = FakeProvider::start(FakeIdentity::verified("g-1", "Grace@Example.org")).await;
    let (github_settings, google_settings) = (github.github(), google.google());
    let app = spawn_app_with(|config| {
        config.github = Some(github_settings);
        config.google = Some(google_settings);
    })
    .await;

    let laptop = browser();
    assert!(sets_session(&sign_in(&app, &laptop, "github", "/").await));
    let id = app.simple_ballot(&laptop, "Which compiler version?").await;

    let phone = browser();
    assert!(sets_session(&sign_in(&app, &phone, "google", "/").await));
    assert_eq!(
        signed_in_as(&app, &phone).await.as_deref(),
        Some("grace@example.org")
    );
    let dashboard = app.page_text(&phone, "/").await;
    assert!(
        dashboard.contains("Which compiler version?") && dashboard.contains(&id),
        "the ballot made through GitHub is on the dashboard signed in through Google:\n{dashboard}"
    );
    let stranger = browser();
    let theirs = app.page_text(&stranger, "/").await;
    assert!(!theirs.contains("Which compiler version?"));
}

#[tokio::test]
async fn a_tampered_state_is_refused_and_signs_no_one_in() {
    let fake = FakeProvider::start(FakeIdentity::verified("7", "mallory@example.org")).await;
    let app = app_with_github(&fake).await;
    let browser = browser();

    let authorize_url = start_sign_in(&app, &browser, "github", "/").await;
    let callback = at_provider(&app, &browser, &authorize_url).await;
    let mut tampered = reqwest::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = tampered
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let response = browser.get(tampered).send().await.unwrap();

    assert_eq!(response.status(), 403);
    assert!(!sets_session(&response));
    assert!(response.text().await.unwrap().contains("sign_in_refused"));
    assert!(
        !fake.seen().contains(&"/token".to_owned()),
        "no code was exchanged"
    );
    assert_eq!(signed_in_as(&app, &browser).await, None);
}

#[tokio::test]
async fn a_callback_without_a_sign_in_under_way_is_refused() {
    let fake = FakeProvider::start(FakeIdentity::verified("7", "mallory@example.org")).await;
    let app = app_with_github(&fake).await;
    // Someone else's sign-in, carried to another browser (login CSRF).
    let victim = browser();
    let authorize_url = start_sign_in(&app, &victim, "github", "/").await;
    let callback = at_provider(&app, &victim, &authorize_url).await;

    let attacker = browser();
    let response = attacker.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(!sets_session(&response));

    let response = attacker
        .get(app.url("/auth/github/callback?code=anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "no state at all");
    assert!(!sets_session(&response));
    assert_eq!(signed_in_as(&app, &attacker).await, None);
}

#[tokio::test]
async fn a_denied_authorization_shows_an_error_and_signs_no_one_in() {
    let fake = FakeProvider::start(FakeIdentity::verified("9", "ada@example.org")).await;
    fake.deny();
    let app = app_with_github(&fake).await;
    let browser = browser();

    let response = sign_in(&app, &browser, "github", "/").await;

    assert_eq!(response.status(), 400);
    assert!(!sets_session(&response));
    let page = response.text().await.unwrap();
    assert!(page.contains("sign_in_cancelled"), "{page}");
    assert!(page.contains("access was denied"), "{page}");
    assert_eq!(signed_in_as(&app, &browser).await, None);
}

#[tokio::test]
async fn an_unverified_email_is_refused_by_either_provider() {
    let unverified = FakeIdentity {
        subject: "11".to_owned(),
        email: "unverified@example.org".to_owned(),
        verified: false,
    };
    let github = FakeProvider::start(unverified.clone()).await;
    let google = FakeProvider::start(unverified).await;
    let (github_settings, google_settings) = (github.github(), google.google());
    let app = spawn_app_with(|config| {
        config.github = Some(github_settings);
        config.google = Some(google_settings);
    })
    .await;

    for provider in ["github", "google"] {
        let browser = browser();
        let response = sign_in(&app, &browser, provider, "/").await;
        assert_eq!(response.status(), 400, "{provider}");
        assert!(!sets_session(&response), "{provider}");
        let page = response.text().await.unwrap();
        assert!(page.contains("email_not_verified"), "{provider}: {page}");
        assert_eq!(signed_in_as(&app, &browser).await, None, "{provider}");
    }
}

#[tokio::test]
async fn a_failed_code_exchange_is_a_clear_502() {
    let fake = FakeProvider::start(FakeIdentity::verified("12", "ada@example.org")).await;
    let wrong_secret = oponn_web::OAuthProviderConfig {
        client_secret: "not the secret".to_owned(),
        ..fake.github()
    };
    let app = spawn_app_with(|config| config.github = Some(wrong_secret)).await;
    let browser = browser();

    let response = sign_in(&app, &browser, "github", "/").await;

    assert_eq!(response.status(), 502);
    assert!(!sets_session(&response));
    let page = response.text().await.unwrap();
    assert!(page.contains("sign_in_failed"), "{page}");
    assert!(
        !page.contains("invalid_client"),
        "the provider's words stay in the log"
    );
}

#[tokio::test]
async fn unknown_and_unconfigured_providers_are_404() {
    let fake = FakeProvider::start(FakeIdentity::verified("1", "ada@example.org")).await;
    let app = app_with_github(&fake).await;
    let browser = browser();
    for path in [
        "/auth/google/login",
        "/auth/gitlab/login",
        "/auth/google/callback?code=c&state=s",
    ] {
        assert_eq!(app.get(&browser, path).await.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn sign_in_returns_only_to_local_paths() {
    let fake = FakeProvider::start(FakeIdentity::verified("3", "ada@example.org")).await;
    let app = app_with_github(&fake).await;
    for next in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let browser = browser();
        let response = sign_in(&app, &browser, "github", next).await;
        assert_eq!(response.status(), 303, "{next}");
        assert_eq!(location(&response), "/", "{next}");
    }
}

#[tokio::test]
async fn the_login_page_offers_configured_providers_and_the_mock_one() {
    let fake = FakeProvider::start(FakeIdentity::verified("1", "ada@example.org")).await;
    let app = app_with_google(&fake).await;
    let browser = browser();

    let page = unescape(&app.page_text(&browser, "/login?next=/create").await);
    assert!(
        page.contains("href=\"/auth/google/login?next=%2Fcreate\""),
        "{page}"
    );
    assert!(
        !page.contains("/auth/github/login"),
        "GitHub is not configured"
    );
    assert!(page.contains("continue_as_dev_user"));
    assert!(page.contains("value=\"dev@oponn.local\""));
    assert!(
        page.contains("href=\"/login\""),
        "the header links to login"
    );
}

#[tokio::test]
async fn mock_sign_in_takes_one_click_in_testing() {
    let app = spawn_app_with(|_| {}).await;
    let browser = browser();
    assert!(
        app.page_text(&browser, "/login")
            .await
            .contains("continue_as_dev_user")
    );

    let response = app
        .form_post(
            &browser,
            "/auth/mock",
            &[("email", "dev@oponn.local"), ("next", "/create")],
        )
        .await
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/create");
    let session = cookie_set(&response, "oponn_session").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Max-Age=604800"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    assert_eq!(
        signed_in_as(&app, &browser).await.as_deref(),
        Some("dev@oponn.local")
    );
}

#[tokio::test]
async fn mock_sign_in_needs_a_csrf_token_and_an_email() {
    let app = spawn_app_with(|_| {}).await;
    let browser = browser();
    let response = browser
        .post(app.url("/auth/mock"))
        .form(&[("email", "dev@oponn.local")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(!sets_session(&response));

    let response = app
        .form_post(&browser, "/auth/mock", &[("email", "not an email")])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the form again, with a message");
    assert!(!sets_session(&response));
    assert!(response.text().await.unwrap().contains("field-error-msg"));
}

#[tokio::test]
async fn the_mock_provider_is_absent_and_404_in_production() {
    let app = spawn_app_with(|config| config.environment = Environment::Production).await;
    let browser = browser();

    let page = unescape(&app.page_text(&browser, "/login").await);
    assert!(!page.contains("continue_as_dev_user"), "{page}");
    assert!(!page.contains("/auth/mock"));
    let response = browser
        .post(app.url("/auth/mock"))
        .form(&[("email", "dev@oponn.local")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(!sets_session(&response));
    assert_eq!(app.get(&browser, "/auth/mock").await.status(), 404);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app_with(|_| {}).await;
    let browser = browser();
    let response = app
        .form_post(&browser, "/auth/mock", &[("email", "ada@example.org")])
        .await
        .send()
        .await
        .unwrap();
    assert!(sets_session(&response));

    let refused = browser.post(app.url("/auth/logout")).send().await.unwrap();
    assert_eq!(refused.status(), 403, "logout needs the CSRF token");
    assert!(signed_in_as(&app, &browser).await.is_some());

    let response = app
        .form_post(&browser, "/auth/logout", &[])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/");
    let cleared = cookie_set(&response, "oponn_session").expect("the session cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(signed_in_as(&app, &browser).await, None);
}

/// Whether `response` expires the CSRF cookie.
fn drops_csrf_secret(response: &Response) -> bool {
    set_cookies(response)
        .iter()
        .any(|cookie| cookie.starts_with("oponn_csrf=;") && cookie.contains("Max-Age=0"))
}

#[tokio::test]
async fn signing_in_and_out_drops_the_csrf_secret_so_earlier_tokens_stop_counting() {
    let app = spawn_app_with(|_| {}).await;
    let browser = browser();
    let before = crate::helpers::csrf_token(&browser, &app.url("/create")).await;
    let signed_in = app
        .form_post(&browser, "/auth/mock", &[("email", "dev@oponn.local")])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert!(
        drops_csrf_secret(&signed_in),
        "{:?}",
        set_cookies(&signed_in)
    );
    let create = [("measure", "after sign-in"), ("options_raw", "a, b")];
    let stale = browser
        .post(app.url("/create"))
        .form(&[&[("X-CSRF-Token", before.as_str())][..], &create].concat())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 403, "a token from before signing in");
    let created = app
        .form_post(&browser, "/create", &create)
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 303, "a page loaded after signing in");

    let signed_in_token = crate::helpers::csrf_token(&browser, &app.url("/create")).await;
    let signed_out = app
        .form_post(&browser, "/auth/logout", &[])
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 303);
    assert!(
        drops_csrf_secret(&signed_out),
        "{:?}",
        set_cookies(&signed_out)
    );
    let stale = browser
        .post(app.url("/create"))
        .form(&[&[("X-CSRF-Token", signed_in_token.as_str())][..], &create].concat())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 403, "a token from before signing out");
}
