//! Hostile traffic: oversized and slow requests, too many connections,
//! cross-site state changes, injection through labels, unbounded metrics,
//! and rate limits. Each gets a clear refusal, never a crash.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{
    DEADLINE, TestApp, browser, get_text, header, post_json, spawn_app, spawn_app_with,
};

fn host_of(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Sends `request` on a fresh connection and returns everything the server
/// sends back until it closes the connection.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(host_of(app)).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_until_closed(&mut stream).await
}

async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection within the deadline");
    String::from_utf8_lossy(&received).into_owned()
}

async fn api_ballot(app: &TestApp, options: Value) -> (reqwest::StatusCode, Value) {
    let response = post_json(
        &browser(),
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "hardening?", "options": options, "allow_write_in": true, "window_minutes": 30 }),
    )
    .await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates a ballot through the API as `client` and returns its id.
async fn created_ballot(client: &reqwest::Client, url: &str, body: Value) -> String {
    let created = post_json(client, url, &body).await;
    assert_eq!(created.status(), 201, "{body}");
    created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_body_declared_too_large_is_refused_before_it_is_read() {
    let app = spawn_app().await;
    let host = host_of(&app);
    for path in [
        "/create",
        "/api/v1/ballots",
        "/livez",
        "/vote/AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        // 100 MB declared, nothing sent: the answer must not wait for it.
        let response = raw_exchange(
            &app,
            format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Content-Length: 100000000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert!(
            response.starts_with("HTTP/1.1 413"),
            "{path}: {}",
            response.lines().next().unwrap_or_default()
        );
    }
}

#[tokio::test]
async fn body_limits_hold_at_their_boundary_and_for_chunked_bodies() {
    let app = spawn_app().await;
    let client = browser();
    let url = app.url("/api/v1/ballots");
    // Exactly the limit is read (and then judged on its content);
    // one byte more is refused unread.
    for (size, expected) in [
        (oponn_web::MAX_BALLOT_BODY_BYTES, 422),
        (oponn_web::MAX_BALLOT_BODY_BYTES + 1, 413),
    ] {
        let padding = " ".repeat(size - r#"{"measure":"x","options":[]}"#.len());
        let body = format!(r#"{{"measure":"x","options":[]}}{padding}"#);
        assert_eq!(body.len(), size);
        let response = client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "a body of {size} bytes");
        if expected == 413 {
            let problem: Value = response.json().await.unwrap();
            assert!(problem["message"].as_str().unwrap().contains("larger"));
        }
    }
    // A chunked body (no length declared) is cut off at the limit too.
    let chunks = futures_util::stream::iter(
        (0..100).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 8192]))),
    );
    let response = client
        .post(app.url("/vote/AAAAAAAAAAAAAAAAAAAAAA"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // An oversized create form is not echoed back.
    let huge_measure = "m".repeat(oponn_web::MAX_BALLOT_BODY_BYTES);
    let response = app
        .form_post(
            &client,
            "/create",
            &[("measure", &huge_measure), ("options", "a,b")],
        )
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.text().await.unwrap().len() < 20_000);
}

#[tokio::test]
async fn silent_trickling_and_idle_connections_are_closed() {
    let app = spawn_app_with(|config| {
        config.limits.header_read_timeout = Duration::from_millis(500);
        config.limits.body_read_timeout = Duration::from_millis(500);
    })
    .await;
    let host = host_of(&app);

    // A connection that sends nothing.
    let mut silent = TcpStream::connect(&host).await.unwrap();
    assert_eq!(read_until_closed(&mut silent).await, "");

    // Headers trickled a byte at a time, slower than the timeout allows.
    let mut trickle = TcpStream::connect(&host).await.unwrap();
    let closed = tokio::time::timeout(DEADLINE, async {
        for byte in b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n" {
            if trickle.write_all(&[*byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    })
    .await
    .unwrap();
    let rest = read_until_closed(&mut trickle).await;
    assert!(
        closed || !rest.contains("200 OK"),
        "a trickled request was served: {rest}"
    );

    // An idle keep-alive connection after a response.
    let mut idle = TcpStream::connect(&host).await.unwrap();
    idle.write_all(format!("GET /livez HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answered = read_until_closed(&mut idle).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // A body that never finishes arriving.
    let mut slow_body = TcpStream::connect(&host).await.unwrap();
    slow_body
        .write_all(
            format!(
                "POST /api/v1/ballots HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answered = read_until_closed(&mut slow_body).await;
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_and_the_server_recovers() {
    let app = spawn_app_with(|config| config.limits.max_connections = 3).await;
    let host = host_of(&app);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(&host).await.unwrap();
        // A complete request each, so each connection is surely accepted.
        stream
            .write_all(format!("GET /livez HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buffer = [0u8; 512];
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    let refused = raw_exchange(
        &app,
        format!("GET /livez HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("Retry-After: 1"));
    drop(held);
    let livez = tokio::time::timeout(DEADLINE, async {
        loop {
            match reqwest::get(app.url("/livez")).await {
                Ok(response) if response.status() == 200 => return,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    assert!(
        livez.is_ok(),
        "the server serves again once connections close"
    );
}

#[tokio::test]
async fn no_label_can_inject_into_the_live_stream() {
    let app = spawn_app().await;
    let (status, ballot) = api_ballot(&app, json!(["Ramen\revent: hijacked", "Sushi"])).await;
    if status != 201 {
        // Refused outright as a control character: nothing to inject.
        assert_eq!(status, 422);
        return;
    }
    let id = ballot["id"].as_str().unwrap();
    let response = browser()
        .get(app.url(&format!("/ballots/{id}/live-results")))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(DEADLINE, futures_util::StreamExt::next(&mut body))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let frame = String::from_utf8_lossy(&first);
    for line in frame.split(['\r', '\n']).filter(|line| !line.is_empty()) {
        assert!(
            line.starts_with("data: ") || line == "event: results" || line.starts_with("id: "),
            "a field was injected: {line:?}"
        );
    }
}

#[tokio::test]
async fn csv_exports_neutralise_formulas_and_are_attachments() {
    let app = spawn_app().await;
    let (status, ballot) = api_ballot(&app, json!(["plain"])).await;
    assert_eq!(status, 201);
    let id = ballot["id"].as_str().unwrap();
    let votes = app.url(&format!("/api/v1/ballots/{id}/votes"));
    let payloads = [
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A2)",
        "\u{FF1D}1+1",
    ];
    for payload in payloads {
        let vote = post_json(&browser(), &votes, &json!({ "write_in": payload })).await;
        assert_eq!(vote.status(), 201, "{payload}");
    }
    let client = browser();
    let page_csv = client
        .get(app.url(&format!("/results/{id}/export.csv")))
        .send()
        .await
        .unwrap();
    let api_csv = client
        .get(app.url(&format!("/api/v1/ballots/{id}/results?format=csv")))
        .send()
        .await
        .unwrap();
    for response in [page_csv, api_csv] {
        assert!(header(response.headers(), "content-disposition").starts_with("attachment"));
        let text = response.text().await.unwrap();
        let cells: Vec<String> = csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|record| record.unwrap()[0].to_owned())
            .collect();
        for cell in &cells {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r', '\u{FF1D}']),
                "a formula cell: {cell:?}"
            );
        }
        for payload in payloads {
            assert!(
                cells.contains(&format!("'{payload}")),
                "{payload:?} not kept behind a quote mark: {cells:?}"
            );
        }
    }
    // JSON keeps the text verbatim.
    let json =
        crate::helpers::get_json(&client, &app.url(&format!("/api/v1/ballots/{id}/results")))
            .await
            .to_string();
    assert!(json.contains("=HYPERLINK"));
    assert!(!json.contains("'=HYPERLINK"));
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = spawn_app().await;
    let client = browser();
    for n in 0..200 {
        let method = reqwest::Method::from_bytes(format!("PROBE{n}").as_bytes()).unwrap();
        let _ = client
            .request(method, app.url(&format!("/x{n}")))
            .send()
            .await
            .unwrap();
    }
    let metrics = get_text(&client, &app.url("/metrics")).await;
    assert!(
        !metrics.contains("PROBE"),
        "a made-up method became a label"
    );
    assert!(!metrics.contains("/x1"), "a raw path became a label");
    assert!(metrics.contains("method=\"other\""));
    assert!(
        metrics.len() < 50_000,
        "metrics grew to {} bytes",
        metrics.len()
    );
}

#[tokio::test]
async fn cross_site_state_changes_are_refused_on_pages_and_api() {
    let app = spawn_app().await;
    let owner = browser();
    let id = created_ballot(
        &owner,
        &app.url("/api/v1/ballots"),
        json!({ "measure": "cross-site?", "options": ["a", "b"] }),
    )
    .await;
    let close = app.url(&format!("/api/v1/ballots/{id}/close"));
    let host = host_of(&app);

    // A plain cross-site form: no JSON type, no custom header.
    let plain = owner.post(&close).send().await.unwrap();
    assert_eq!(plain.status(), 415);
    let form = owner
        .post(&close)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    assert!(header(form.headers(), "content-type").starts_with("application/json"));

    // Browsers' own word that the request is cross-site, or a foreign origin.
    for (name, value) in [
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Site", "same-site"),
        ("Origin", "null"),
        ("Origin", "https://evil.example"),
        ("Origin", "http://sub.127.0.0.1.nip.io"),
    ] {
        let response = owner
            .post(&close)
            .header("Content-Type", "application/json")
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{name}: {value}");
        let page = app
            .form_post(
                &owner,
                "/create",
                &[("measure", "forged?"), ("options", "a,b")],
            )
            .await
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 403, "page, {name}: {value}");
        let logout = owner
            .post(app.url("/auth/logout"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 403, "logout, {name}: {value}");
    }
    let ballot = crate::helpers::get_json(&owner, &app.url(&format!("/api/v1/ballots/{id}"))).await;
    assert_eq!(ballot["status"], "active", "no forged request closed it");

    // The same request from the page's own origin goes through.
    let same_origin = owner
        .post(&close)
        .header("Content-Type", "application/json")
        .header("Origin", format!("http://{host}"))
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let app = spawn_app_with(|config| {
        config.limits.ballots_per_minute = 2;
        config.limits.write_ins_per_minute = 2;
        config.limits.streams_per_minute = 2;
    })
    .await;
    let client = browser();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, ballot) = api_ballot(&app, json!(["a", "b"])).await;
        assert_eq!(status, 201);
        ids.push(ballot["id"].as_str().unwrap().to_owned());
    }
    let over = post_json(
        &client,
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "one too many", "options": ["a", "b"] }),
    )
    .await;
    assert_eq!(over.status(), 429);
    let wait: u64 = header(over.headers(), "retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    let page = app
        .form_post(
            &client,
            "/create",
            &[("measure", "one too many"), ("options", "a,b")],
        )
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429, "the form shares the API's limit");

    let votes = app.url(&format!("/api/v1/ballots/{}/votes", ids[0]));
    for n in 0..2 {
        let vote = post_json(
            &browser(),
            &votes,
            &json!({ "write_in": format!("new {n}") }),
        )
        .await;
        assert_eq!(vote.status(), 201);
    }
    let over = post_json(&browser(), &votes, &json!({ "write_in": "one more" })).await;
    assert_eq!(over.status(), 429);
    assert!(over.headers().contains_key("retry-after"));
    // Choosing an existing option is never limited.
    assert_eq!(
        post_json(&browser(), &votes, &json!({ "option_id": 1 }))
            .await
            .status(),
        201
    );

    let stream = |id: &str| app.url(&format!("/ballots/{id}/live-results"));
    let first = client.get(stream(&ids[0])).send().await.unwrap();
    let second = client.get(stream(&ids[1])).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    let third = client.get(stream(&ids[0])).send().await.unwrap();
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
}

/// The live-results gauge, read from `/metrics`.
async fn watchers_connected(app: &TestApp) -> u64 {
    let metrics = get_text(&browser(), &app.url("/metrics")).await;
    metrics
        .lines()
        .find(|line| line.starts_with("oponn_sse_clients_connected "))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap()
}

/// Waits until the gauge reads `expected`, failing after `within`.
async fn until_watchers(app: &TestApp, expected: u64, within: Duration) {
    let reached = tokio::time::timeout(within, async {
        while watchers_connected(app).await != expected {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "{} watchers connected, not {expected}",
        watchers_connected(app).await
    );
}

#[tokio::test]
async fn departed_watchers_are_noticed_within_about_a_second() {
    let app = spawn_app().await;
    let (status, ballot) = api_ballot(&app, json!(["a", "b"])).await;
    assert_eq!(status, 201);
    let id = ballot["id"].as_str().unwrap().to_owned();
    let host = host_of(&app);
    let mut watchers = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&host).await.unwrap();
        stream
            .write_all(
                format!("GET /ballots/{id}/live-results HTTP/1.1\r\nHost: {host}\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut buffer = [0u8; 4096];
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        watchers.push(stream);
    }
    until_watchers(&app, 50, DEADLINE).await;
    drop(watchers);
    // Well before the 15 s keep-alive would find the sockets dead.
    until_watchers(&app, 0, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn closing_or_deleting_a_ballot_ends_its_live_streams() {
    let app = spawn_app().await;
    let owner = browser();
    for action in ["close", "delete"] {
        let id = created_ballot(
            &owner,
            &app.url("/api/v1/ballots"),
            json!({ "measure": "ends streams?", "options": ["a", "b"] }),
        )
        .await;
        let mut stream = app.live_results(&browser(), &id, None).await;
        assert!(stream.next().await.data.contains("total"));
        let request = match action {
            "close" => owner.post(app.url(&format!("/api/v1/ballots/{id}/close"))),
            _ => owner.delete(app.url(&format!("/api/v1/ballots/{id}"))),
        };
        let done = request
            .header("X-Requested-With", "oponn-tests")
            .send()
            .await
            .unwrap();
        assert!(done.status().is_success(), "{action}: {}", done.status());
        stream.until_closed().await;
    }
}

#[tokio::test]
async fn votes_aborted_mid_request_never_cancel_other_voters_commits() {
    // The embedded default, where a cancelled commit used to stall SQLite.
    let dir = tempfile::tempdir().unwrap();
    let oponn = crate::process::OponnProcess::start(
        dir.path(),
        &[
            ("OPONN_WRITE_INS_PER_MINUTE", "0"),
            ("OPONN_BALLOTS_PER_MINUTE", "0"),
        ],
    )
    .await;
    let id = created_ballot(
        &browser(),
        &oponn.url("/api/v1/ballots"),
        json!({ "measure": "abort flood?", "options": ["a", "b"] }),
    )
    .await;
    let host = oponn.address.trim_start_matches("http://").to_owned();
    let votes = oponn.url(&format!("/api/v1/ballots/{id}/votes"));

    // Attackers: complete votes, the connection reset the moment they are sent.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut attackers = Vec::new();
    for _ in 0..16 {
        let (host, id, stop) = (host.clone(), id.clone(), stop.clone());
        attackers.push(tokio::spawn(async move {
            let body = r#"{"option_id":1}"#;
            let request = format!(
                "POST /api/v1/ballots/{id}/votes HTTP/1.1\r\nHost: {host}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut sent = 0u32;
            while !stop.is_cancelled() && sent < 2_000 {
                let Ok(mut stream) = TcpStream::connect(&host).await else {
                    continue;
                };
                let _ = stream.write_all(request.as_bytes()).await;
                // A zero linger resets the connection on drop, at once.
                #[allow(deprecated, reason = "a zero linger never blocks")]
                let _ = stream.set_linger(Some(Duration::ZERO));
                drop(stream);
                sent += 1;
                tokio::task::yield_now().await;
            }
        }));
    }
    // Honest voters beside them: every one is answered, and truthfully.
    let mut honest = Vec::new();
    for _ in 0..8 {
        let votes = votes.clone();
        honest.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..25 {
                let voter = browser();
                let response = post_json(&voter, &votes, &json!({ "option_id": 2 })).await;
                statuses.push(response.status().as_u16());
            }
            statuses
        }));
    }
    let mut accepted = 0u64;
    for voter in honest {
        for status in tokio::time::timeout(Duration::from_secs(60), voter)
            .await
            .expect("honest voters are served promptly")
            .unwrap()
        {
            assert_eq!(status, 201, "an honest vote was refused");
            accepted += 1;
        }
    }
    stop.cancel();
    for attacker in attackers {
        attacker.await.unwrap();
    }
    let tally = crate::helpers::get_json(
        &browser(),
        &oponn.url(&format!("/api/v1/ballots/{id}/tally")),
    )
    .await;
    let for_b = tally["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["option_id"] == 2)
        .map(|row| row["count"].as_u64().unwrap())
        .unwrap();
    assert_eq!(
        for_b, accepted,
        "every acknowledged honest vote is counted once"
    );
    oponn.terminate().await;
}

#[tokio::test]
async fn the_dashboard_shows_a_page_at_a_time() {
    let app = spawn_app().await;
    let owner = browser();
    for n in 0..25 {
        let created = post_json(
            &owner,
            &app.url("/api/v1/ballots"),
            &json!({ "measure": format!("ballot number {n:02}"), "options": ["a", "b"] }),
        )
        .await;
        assert_eq!(created.status(), 201);
    }
    let count = |html: &str| html.matches("class=\"ballot-item\"").count();
    let first = app.page_text(&owner, "/").await;
    assert_eq!(count(&first), 20);
    assert!(first.contains("href=\"/?page=2\""));
    let second = app.page_text(&owner, "/?page=2").await;
    assert_eq!(count(&second), 5);
    assert!(second.contains("href=\"/?page=1\""));
    assert!(!second.contains("?page=3"));
    // The two pages split the 25 ballots between them, none twice.
    for n in 0..25 {
        let measure = format!("ballot number {n:02}");
        let shown = first.matches(&measure).count() + second.matches(&measure).count();
        assert_eq!(shown, 1, "{measure}");
    }
    for hostile in [
        "/?page=0",
        "/?page=-1",
        "/?page=abc",
        "/?page=99999999999999999999",
    ] {
        let page = app.page_text(&owner, hostile).await;
        assert_eq!(count(&page), 20, "{hostile} is page 1");
    }
    let beyond = app.get(&owner, "/?page=4294967295").await;
    assert_eq!(beyond.status(), 200);
    assert_eq!(count(&beyond.text().await.unwrap()), 0);
}

#[tokio::test]
async fn every_api_refusal_is_a_json_problem_with_its_own_status() {
    let app = spawn_app().await;
    let client = browser();
    let id = created_ballot(
        &client,
        &app.url("/api/v1/ballots"),
        json!({ "measure": "shapes?", "options": ["a", "b"] }),
    )
    .await;
    for (method, path, expected) in [
        // A POST the API does not take is the router's 405, not the
        // script-request gate's 415.
        ("POST", format!("/api/v1/ballots/{id}"), 405),
        ("POST", format!("/api/v1/ballots/{id}/tally"), 405),
        // A path parameter that is not UTF-8.
        ("GET", "/api/v1/ballots/%ff".to_owned(), 400),
        ("GET", "/api/v1/ballots/%ff/tally/stream".to_owned(), 400),
        ("GET", "/api/v1/nothing-here".to_owned(), 404),
    ] {
        let response = client
            .request(method.parse().unwrap(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{method} {path}");
        assert!(
            header(response.headers(), "content-type").starts_with("application/json"),
            "{method} {path}"
        );
        let problem: Value = response.json().await.unwrap();
        assert!(problem["message"].is_string(), "{method} {path}: {problem}");
    }
}

#[tokio::test]
async fn numbers_and_booleans_are_not_taken_for_text() {
    let app = spawn_app().await;
    let client = browser();
    let id = created_ballot(
        &client,
        &app.url("/api/v1/ballots"),
        json!({ "measure": "types?", "options": ["a", "b"], "allow_write_in": true }),
    )
    .await;
    let votes = app.url(&format!("/api/v1/ballots/{id}/votes"));
    for body in [
        json!({ "write_in": false }),
        json!({ "write_in": 12345, "option_id": null }),
        json!({ "write_in": 1.5e3 }),
    ] {
        let response = post_json(&browser(), &votes, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert!(response.json::<Value>().await.unwrap()["message"].is_string());
    }
    for body in [
        json!({ "measure": 123_456, "options": ["a", "b"] }),
        json!({ "measure": "types?", "options": [true, 1.5, false] }),
        json!({ "measure": "types?", "options": ["a", "b"], "scheduled_start": 20_261_201 }),
    ] {
        let response = post_json(&client, &app.url("/api/v1/ballots"), &body).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    let tally =
        crate::helpers::get_json(&client, &app.url(&format!("/api/v1/ballots/{id}/tally"))).await;
    assert_eq!(
        tally["options"].as_array().unwrap().len(),
        2,
        "no write-in was added: {tally}"
    );
}
