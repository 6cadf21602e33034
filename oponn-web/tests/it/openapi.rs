//! The OpenAPI description: a valid OpenAPI 3 document that matches what
//! the API answers, and Swagger UI rendering it in a real browser.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use fantoccini::Locator;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};

use crate::browser::{Driver, wait_for};
use crate::helpers::{browser, post_json, spawn_app};

/// The raw text of the served description.
async fn spec_text() -> String {
    let app = spawn_app().await;
    let response = browser()
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// A JSON value read by a parser that refuses an object repeating a key,
/// which `serde_json::Value` would silently collapse (the export's two
/// `200` keys did, and YAML-based tools like Swagger UI refused them).
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        while items.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = entries.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicated key {key:?}")));
            }
            entries.next_value::<NoDuplicateKeys>()?;
        }
        Ok(NoDuplicateKeys)
    }
}

/// Every `$ref` in `value`, with where it was found.
fn refs(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                if key == "$ref" {
                    if let Some(target) = child.as_str() {
                        found.push((at.to_owned(), target.to_owned()));
                    }
                } else {
                    refs(child, &format!("{at}/{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                refs(child, &format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn the_description_is_a_valid_openapi_3_document() {
    let text = spec_text().await;
    // No object repeats a key: the export once declared `200` twice.
    serde_json::from_str::<NoDuplicateKeys>(&text).unwrap();
    // It parses as OpenAPI 3.
    let document: openapiv3::OpenAPI = serde_json::from_str(&text).unwrap();
    assert!(document.openapi.starts_with("3.0"), "{}", document.openapi);
    let spec: Value = serde_json::from_str(&text).unwrap();

    // Every `$ref` resolves.
    let mut found = Vec::new();
    refs(&spec, "#", &mut found);
    assert!(!found.is_empty());
    for (at, target) in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: {target} is not local"));
        assert!(
            spec.pointer(pointer).is_some(),
            "{at}: {target} resolves to nothing"
        );
    }

    // The server is relative, so "Try it out" calls the origin that served
    // the page, behind a proxy too.
    assert_eq!(spec["servers"], json!([{ "url": "/api/v1" }]));
}

#[tokio::test]
async fn every_operation_documents_its_refusals_as_json_problems() {
    let text = spec_text().await;
    let spec: Value = serde_json::from_str(&text).unwrap();
    let problem = |status: &str, operation: &Value| -> bool {
        let content = &operation["responses"][status]["content"];
        content.as_object().is_some_and(|content| {
            content
                .keys()
                .all(|media| media.starts_with("application/json"))
        }) && content
            .as_object()
            .is_some_and(|content| !content.is_empty())
    };
    let mut checked = BTreeMap::new();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            let changes_state = method != "get";
            let mut expected = vec!["400", "503"];
            if path.contains("{id}") {
                expected.push("404");
            }
            if changes_state {
                // The body-size limit and the cross-site check answer these.
                expected.extend(["403", "413"]);
            }
            if operation.get("requestBody").is_some() {
                expected.extend(["415", "422"]);
            }
            if name == "POST /ballots"
                || name == "POST /ballots/{id}/votes"
                || name == "GET /ballots/{id}/tally/stream"
            {
                expected.push("429");
                let retry_after = &operation["responses"]["429"]["headers"];
                assert!(
                    retry_after
                        .as_object()
                        .unwrap()
                        .keys()
                        .any(|name| name.eq_ignore_ascii_case("retry-after")),
                    "{name}: 429 documents Retry-After"
                );
            }
            for status in expected {
                assert!(
                    problem(status, operation),
                    "{name} documents {status} as JSON"
                );
            }
            checked.insert(name, ());
        }
    }
    assert_eq!(checked.len(), 14, "{:?}", checked.keys());

    // One 200 for the export, in both of its media types.
    let export = &spec["paths"]["/ballots/{id}/results"]["get"]["responses"]["200"]["content"];
    let media: BTreeSet<&str> = export
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        media,
        BTreeSet::from(["application/json; charset=utf-8", "text/csv; charset=utf-8"])
    );
}

#[tokio::test]
async fn optional_response_fields_are_nullable() {
    let spec: Value = serde_json::from_str(&spec_text().await).unwrap();
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let mut optional = 0;
    for name in [
        "BallotBody",
        "VoteAccepted",
        "TallyBody",
        "TallyRow",
        "OptionBody",
    ] {
        let schema = &schemas[name];
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (field, property) in schema["properties"].as_object().unwrap() {
            if !required.contains(field.as_str()) {
                optional += 1;
                assert_eq!(property["nullable"], true, "{name}.{field} may be null");
            }
        }
    }
    assert!(optional >= 4, "ends_at, closed_at, changed_from and tally");
}

#[tokio::test]
async fn the_schema_states_the_cores_limits() {
    let spec: Value = serde_json::from_str(&spec_text().await).unwrap();
    let body = &spec["paths"]["/ballots"]["post"]["requestBody"]["content"]["application/json; charset=utf-8"]
        ["schema"];
    let fields = &body["allOf"][1]["properties"];
    assert_eq!(fields["measure"]["minLength"], 3);
    assert_eq!(fields["measure"]["maxLength"], 255);
    assert_eq!(fields["options"]["maxItems"], 64);
    assert_eq!(fields["options"]["items"]["maxLength"], 64);
    assert_eq!(fields["window_minutes"]["maximum"], 525_600.0);
    let id = &spec["paths"]["/ballots/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!(id["pattern"], "^[A-Za-z0-9_-]{21}[AQgw]$");
}

#[tokio::test]
async fn unreadable_requests_get_json_problems() {
    let app = spawn_app().await;
    let client = browser();
    let ballots = app.url("/api/v1/ballots");
    // Not JSON at all: 415.
    let form = client
        .post(&ballots)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("measure=x")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    assert!(form.json::<Value>().await.unwrap()["message"].is_string());
    // Malformed JSON, or a value of the wrong type: 400.
    for body in ["{", "{\"measure\": 5, \"options\": \"a\"}", "\u{0}"] {
        let response = client
            .post(&ballots)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body:?}");
        assert!(
            response.json::<Value>().await.unwrap()["message"].is_string(),
            "{body:?}"
        );
    }
    // A bad export format: 400.
    let id = post_json(
        &client,
        &ballots,
        &json!({ "measure": "formats", "options": ["a", "b"] }),
    )
    .await
    .json::<Value>()
    .await
    .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad_format = client
        .get(app.url(&format!("/api/v1/ballots/{id}/results?format=xml")))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_format.status(), 400);
    assert!(bad_format.json::<Value>().await.unwrap()["message"].is_string());
    // A method the path does not take: 405, naming the ones it does.
    let traced = client
        .request(
            reqwest::Method::PUT,
            app.url(&format!("/api/v1/ballots/{id}/votes")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(traced.status(), 405);
    assert_eq!(traced.headers()["allow"], "POST");
    assert!(traced.json::<Value>().await.unwrap()["message"].is_string());
}

#[tokio::test]
async fn the_export_serves_json_or_csv_by_format() {
    let app = spawn_app().await;
    let client = browser();
    let created = post_json(
        &client,
        &app.url("/api/v1/ballots"),
        &json!({ "measure": "export formats", "options": ["a", "b"], "window_minutes": 0 }),
    )
    .await;
    let ballot: Value = created.json().await.unwrap();
    assert_eq!(ballot["ends_at"], Value::Null, "present and null");
    assert_eq!(ballot["closed_at"], Value::Null, "present and null");
    let id = ballot["id"].as_str().unwrap();
    let results = app.url(&format!("/api/v1/ballots/{id}/results"));
    let json = client.get(&results).send().await.unwrap();
    assert_eq!(json.status(), 200);
    assert!(
        json.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let csv = client
        .get(format!("{results}?format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.text()
            .await
            .unwrap()
            .starts_with("option,count,percentage")
    );
}

#[tokio::test]
async fn swagger_ui_lists_every_operation() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let page = driver.browser().await;
    page.goto(&app.url("/api/docs")).await.unwrap();
    wait_for(&page, ".opblock").await;
    let operations = page
        .find_all(Locator::Css(".opblock .opblock-summary-path"))
        .await
        .unwrap();
    let mut listed = BTreeSet::new();
    for operation in operations {
        listed.insert(operation.text().await.unwrap().replace('\u{200b}', ""));
    }
    assert_eq!(
        listed,
        BTreeSet::from(
            [
                "/ballots",
                "/ballots/{id}",
                "/ballots/{id}/votes",
                "/ballots/{id}/close",
                "/ballots/{id}/results",
                "/ballots/{id}/ballots",
                "/ballots/{id}/tally",
                "/ballots/{id}/tally/stream",
                "/ballots/{id}/invitations",
                "/ballots/{id}/invitations/{invitation_id}",
                "/ballots/{id}/receipts/{receipt}",
                "/ballots/{id}/bulletin",
            ]
            .map(str::to_owned)
        ),
    );
    // Swagger UI shows a parse error (once "duplicated mapping key") here.
    let errors = page
        .find_all(Locator::Css(".errors-wrapper"))
        .await
        .unwrap();
    assert!(
        errors.is_empty(),
        "Swagger UI reports errors in the document"
    );
    let blocks = page.find_all(Locator::Css(".opblock")).await.unwrap();
    assert_eq!(blocks.len(), 14, "fourteen operations");
    page.close().await.unwrap();
}
