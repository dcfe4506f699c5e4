//! Knowledge: documents CRUD and limits, hybrid search (ranking on a labelled set, isolation
//! through full text and vectors), and chat turns that retrieve and cite.

use axum::http::StatusCode;
use codechat_api_tests::{fakes, TestApp};
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

async fn add(app: &TestApp, token: &str, title: &str, content: &str) -> Value {
    let res = app
        .post(
            "/api/v1/knowledge/documents",
            json!({"title": title, "content": content}),
            Some(token),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json()
}

async fn search(app: &TestApp, token: &str, q: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/api/v1/knowledge/search?q={}", urlencode(q)),
            Some(token),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json()["items"].as_array().unwrap().clone()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn documents_crud_is_owner_only_and_checked() {
    let app = TestApp::with_env(&[("MAX_DOCUMENT_BYTES", "2000")]).await;
    let t = app.register("docs@example.com").await.access;
    let other = app.register("other-docs@example.com").await.access;

    let doc = add(
        &app,
        &t,
        "  Lighthouses ",
        "# Lighthouses\n\nA lighthouse keeper trims the wick.\n\n## Lenses\n\nFresnel lenses bend light.",
    )
    .await;
    assert_eq!(doc["title"], "Lighthouses");
    assert_eq!(doc["content_type"], "text/markdown");
    assert_eq!(doc["status"], "ready");
    assert_eq!(doc["chunk_count"], 2);
    assert_eq!(doc["embedder"], "local/hashed-ngrams-256");
    let id = doc["id"].as_str().unwrap().to_string();
    let second = add(&app, &t, "Plain", "just some words").await;

    let page = app
        .get("/api/v1/knowledge/documents?limit=1", Some(&t))
        .await
        .json();
    assert_eq!(page["items"][0]["id"], second["id"], "newest first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let page = app
        .get(
            &format!("/api/v1/knowledge/documents?limit=1&cursor={cursor}"),
            Some(&t),
        )
        .await
        .json();
    assert_eq!(page["items"][0]["id"], id.as_str());

    // Another user's document is 404 for every verb, and their list is empty.
    let url = format!("/api/v1/knowledge/documents/{id}");
    assert_eq!(
        app.get(&url, Some(&other)).await.status,
        StatusCode::NOT_FOUND
    );
    let res = app.patch(&url, json!({"title": "x"}), Some(&other)).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&url, Some(&other)).await.status,
        StatusCode::NOT_FOUND
    );
    let list = app
        .get("/api/v1/knowledge/documents", Some(&other))
        .await
        .json();
    assert_eq!(list["items"], json!([]));
    assert!(search(&app, &other, "lighthouse").await.is_empty());
    assert_eq!(
        app.get("/api/v1/knowledge/documents", None).await.status,
        StatusCode::UNAUTHORIZED
    );

    let renamed = app
        .patch(&url, json!({"title": "Lights"}), Some(&t))
        .await
        .json();
    assert_eq!(renamed["title"], "Lights");
    let res = app.patch(&url, json!({"title": " "}), Some(&t)).await;
    assert_eq!(res.invalid_fields(), ["title"]);

    // Every bad field is named; nothing is stored.
    let res = app
        .post(
            "/api/v1/knowledge/documents",
            json!({"title": "", "content": " ", "content_type": "application/pdf"}),
            Some(&t),
        )
        .await;
    let mut fields = res.invalid_fields();
    fields.sort();
    assert_eq!(fields, ["content", "content_type", "title"]);
    let res = app
        .post(
            "/api/v1/knowledge/documents",
            json!({"title": "t", "content": "the of and"}),
            Some(&t),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["content"]);
    // The size limit at its edge: 2000 bytes go in, 2001 are 413.
    let edge = "word ".repeat(400);
    assert_eq!(edge.len(), 2000);
    add(&app, &t, "Edge", &edge).await;
    let res = app
        .post(
            "/api/v1/knowledge/documents",
            json!({"title": "t", "content": format!("{edge}x")}),
            Some(&t),
        )
        .await;
    res.problem(StatusCode::PAYLOAD_TOO_LARGE);
    let list = app
        .get("/api/v1/knowledge/documents", Some(&t))
        .await
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 3);

    // Search finds the chunk under its heading; bad queries are 422.
    let hits = search(&app, &t, "fresnel lens").await;
    assert_eq!(hits[0]["document_id"], id.as_str());
    assert_eq!(hits[0]["heading"], "Lighthouses › Lenses");
    assert_eq!(hits[0]["chunk"], 1);
    assert!(hits[0]["snippet"].as_str().unwrap().contains("Fresnel"));
    let res = app.get("/api/v1/knowledge/search?q=the", Some(&t)).await;
    assert_eq!(res.invalid_fields(), ["q"]);
    let res = app
        .get("/api/v1/knowledge/search?q=light&limit=0", Some(&t))
        .await;
    assert_eq!(res.invalid_fields(), ["limit"]);
    // FTS5 syntax is text, not an operator (no 500 from a stray quote or NEAR).
    let res = app
        .get("/api/v1/knowledge/search?q=%22lens%20NEAR(%20*", Some(&t))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    // Deleting takes the chunks with it: neither full text nor vectors find them.
    assert_eq!(
        app.delete(&url, Some(&t)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&url, Some(&t)).await.status, StatusCode::NOT_FOUND);
    let hits = search(&app, &t, "fresnel lighthouse keeper").await;
    assert!(
        hits.iter().all(|h| h["document_id"] != id.as_str()),
        "{hits:?}"
    );
}

/// Ten short documents on distinct subjects and a question for each, worded differently from the
/// document (other inflections, other word order).
const LABELLED: [(&str, &str, &str); 10] = [
    ("Whaling", "The harpooner stood in the bow as the boat closed on the sperm whale. Whalers boiled blubber into oil aboard the ship.", "how was oil made from whales"),
    ("Beekeeping", "Worker bees gather nectar and turn it into honey inside wax combs. The beekeeper smokes the hive before lifting the frames.", "why does a beekeeper use smoke on hives"),
    ("Volcanoes", "Magma rises through the crust and erupts as lava. Ash clouds from an eruption can ground aircraft for days.", "what happens when a volcano erupts"),
    ("Chess openings", "The Sicilian Defence answers e4 with c5. Openings aim to develop knights and bishops and castle the king early.", "which defence replies to e4 in chess"),
    ("Bread", "Sourdough bread rises with a starter of wild yeast. Knead the dough, let it prove overnight and bake it in a hot oven.", "how long should sourdough dough prove"),
    ("Rust ownership", "Every value in Rust has one owner. Borrowing lends a reference; the borrow checker rejects a mutable borrow alongside shared ones.", "what does the borrow checker reject"),
    ("Lighthouses", "A lighthouse keeper tended the lamp through the night. Fresnel lenses focus the beam so ships see it from far away.", "who kept the lamp lit in a lighthouse"),
    ("Orbits", "A satellite in low orbit circles the Earth in about ninety minutes. Higher orbits are slower; geostationary satellites match the planet's rotation.", "how fast do satellites orbit the earth"),
    ("Violins", "Luthiers carve violin tops from spruce and backs from maple. The varnish affects how the instrument sounds.", "what wood are violins made from"),
    ("Tea", "Green tea leaves are steamed or pan-fired to stop oxidation. Black tea is fully oxidised before drying.", "difference between green and black tea processing"),
];

/// Adds the labelled documents; their ids in order.
async fn add_labelled(app: &TestApp, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for (title, content, _) in LABELLED {
        let doc = add(app, token, title, content).await;
        ids.push(doc["id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test]
async fn hybrid_search_ranks_the_labelled_set_and_stays_within_the_owner() {
    let app = TestApp::spawn().await;
    let t = app.register("rank@example.com").await.access;
    let ids = add_labelled(&app, &t).await;
    let mut found = 0;
    for (i, (_, _, question)) in LABELLED.iter().enumerate() {
        let hits = search(&app, &t, question).await;
        let top3: Vec<&str> = hits
            .iter()
            .take(3)
            .map(|h| h["document_id"].as_str().unwrap())
            .collect();
        if top3.contains(&ids[i].as_str()) {
            found += 1;
        } else {
            eprintln!(
                "missed: {question:?} -> {:?}",
                hits.iter().take(3).map(|h| &h["title"]).collect::<Vec<_>>()
            );
        }
        let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "best first: {scores:?}"
        );
    }
    assert!(
        found >= 9,
        "the expected document was in the top 3 for {found} of 10 questions"
    );

    // Another user with many chunks of their own, the same words included: the first user's
    // results are only theirs, through full text and through the vector index (whose nearest
    // neighbours across users are now mostly the other's).
    let other = app.register("crowd@example.com").await.access;
    for i in 0..30 {
        let (title, content, _) = LABELLED[i % 10];
        add(&app, &other, &format!("{title} copy {i}"), content).await;
    }
    for (_, _, question) in LABELLED {
        for hit in search(&app, &t, question).await {
            assert!(
                ids.contains(&hit["document_id"].as_str().unwrap().to_string()),
                "{hit}"
            );
        }
    }
    // A query sharing no word with the user's documents still answers from the user's own
    // chunks only (vector neighbours), never the other user's.
    let other_only = add(&app, &other, "Zebras", "zebra stripes savannah herds").await;
    let hits = search(&app, &t, "zebra stripes savannah").await;
    assert!(
        !hits.is_empty(),
        "vector neighbours answer when no word matches"
    );
    assert!(
        hits.iter()
            .all(|h| ids.contains(&h["document_id"].as_str().unwrap().to_string())),
        "{hits:?}"
    );
    assert!(hits.iter().all(|h| h["document_id"] != other_only["id"]));
    assert_eq!(
        search(&app, &other, "zebra stripes").await[0]["document_id"],
        other_only["id"]
    );
}

#[tokio::test]
async fn chat_with_knowledge_sends_numbered_sources_and_cites_them() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fakes::openai_completion(
                "Spruce and maple [1].",
                80,
                5,
                0,
            )),
        )
        .mount(&server)
        .await;
    let app = TestApp::with_openai_server(&server, &[("DEFAULT_MODEL", "local/echo")]).await;
    let t = app.register("cite@example.com").await.access;
    let ids = add_labelled(&app, &t).await;

    // Without knowledge nothing is retrieved.
    let res = app
        .post(
            "/api/v1/chat",
            json!({"message": "what wood are violins made from"}),
            Some(&t),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.json()["assistant_message"].get("citations").is_none());

    // With it, the model is given numbered sources and the answer carries their citations.
    let res = app
        .post(
            "/api/v1/chat",
            json!({"message": "what wood are violins made from", "knowledge": true, "model": "openai/gpt-4o-mini"}),
            Some(&t),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let body = res.json();
    let citations = body["assistant_message"]["citations"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        citations[0]["document_id"],
        ids[8].as_str(),
        "{citations:?}"
    );
    assert_eq!(citations[0]["title"], "Violins");
    assert_eq!(citations[0]["chunk"], 0);
    assert!(citations[0]["score"].as_f64().unwrap() > 0.0);
    let sent: Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    let system = sent["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        system.contains("[1] Violins") && system.contains("spruce"),
        "{sent}"
    );
    // Stored with the message, shown when the conversation is read.
    let conversation = body["conversation_id"].as_str().unwrap();
    let messages = app.messages(&t, conversation).await;
    assert_eq!(messages[1]["citations"], Value::Array(citations.clone()));

    // An agent with knowledge retrieves on its own; streamed, `done` carries the citations.
    let agent = app
        .post(
            "/api/v1/agents",
            json!({"name": "Librarian", "system_prompt": "Answer from the sources.", "model": "local/echo", "knowledge": true}),
            Some(&t),
        )
        .await
        .json();
    let events = app
        .chat_stream(
            &t,
            json!({"message": "why does a beekeeper use smoke", "agent_id": agent["id"]}),
            None,
        )
        .await;
    let done = &events
        .iter()
        .find(|e| e.event == "done")
        .expect("a done event")
        .data;
    assert_eq!(
        done["assistant_message"]["citations"][0]["title"], "Beekeeping",
        "{done}"
    );
    // The request can turn the agent's retrieval off.
    let res = app
        .post(
            "/api/v1/chat",
            json!({"message": "why does a beekeeper use smoke", "agent_id": agent["id"], "knowledge": false}),
            Some(&t),
        )
        .await;
    assert!(res.json()["assistant_message"].get("citations").is_none());

    // Another user asking with knowledge gets nothing of the first user's.
    let other = app.register("cite-other@example.com").await.access;
    let res = app
        .post(
            "/api/v1/chat",
            json!({"message": "what wood are violins made from", "knowledge": true}),
            Some(&other),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.json()["assistant_message"].get("citations").is_none());
}

#[tokio::test]
async fn an_agent_searches_knowledge_mid_turn_with_its_tool() {
    let server = MockServer::start().await;
    let tool_call = json!({
        "id": "chatcmpl-tools", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {
                "name": "search_knowledge", "arguments": json!({"query": "violin wood"}).to_string()}}]
        }}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    });
    fakes::reply_in_turn(
        &server,
        fakes::OPENAI_CHAT,
        [
            tool_call,
            fakes::openai_completion("Spruce tops, maple backs.", 150, 6, 0),
        ],
    )
    .await;
    let app = TestApp::with_openai_server(&server, &[]).await;
    let t = app.register("tool-search@example.com").await.access;
    let other = app.register("tool-other@example.com").await.access;
    add_labelled(&app, &t).await;
    add(
        &app,
        &other,
        "Secret violins",
        "violin wood secret of the other user",
    )
    .await;
    let agent = app
        .post(
            "/api/v1/agents",
            json!({"name": "Researcher", "system_prompt": "Search before answering.",
                   "model": "openai/gpt-4o-mini", "tools": ["search_knowledge"]}),
            Some(&t),
        )
        .await
        .json();
    let res = app
        .post(
            "/api/v1/chat",
            json!({"message": "What are violins made of?", "agent_id": agent["id"]}),
            Some(&t),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json()["assistant_message"]["content"],
        "Spruce tops, maple backs."
    );
    let sent = fakes::sent_bodies(&server).await;
    // Only the agent's tool is offered (no project: no file tools).
    let offered: Vec<&str> = sent[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["search_knowledge"]);
    let output = sent[1]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(output["role"], "tool");
    let text = output["content"].as_str().unwrap();
    assert!(text.starts_with("[1] Violins"), "{text}");
    assert!(
        !text.contains("Secret"),
        "another user's document reached the tool: {text}"
    );
}

/// A one-page PDF showing `lines` in Helvetica (a standard font, WinAnsi), with a correct xref.
fn pdf(lines: &[&str]) -> Vec<u8> {
    let mut content = String::from("BT /F1 12 Tf 72 720 Td 14 TL\n");
    for line in lines {
        let escaped = line
            .replace('\\', "\\\\")
            .replace('(', "\\(")
            .replace(')', "\\)");
        content.push_str(&format!("({escaped}) Tj T*\n"));
    }
    content.push_str("ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_string(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

const DOCUMENTS: &str = "/api/v1/knowledge/documents";

#[tokio::test]
async fn documents_come_from_text_markdown_and_pdf_files_and_attachments() {
    let app = TestApp::with_env(&[("MAX_INLINE_UPLOAD_BYTES", "20000")]).await;
    let t = app.register("files@example.com").await.access;
    let other = app.register("files-other@example.com").await.access;

    let md = b"# Kettles\n\nThe kettle whistles when the water boils.";
    let res = app
        .post_multipart(
            DOCUMENTS,
            &t,
            &[(
                "file",
                Some("kettles.md"),
                Some("application/octet-stream"),
                md,
            )],
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let doc = res.json();
    assert_eq!(doc["title"], "kettles");
    assert_eq!(doc["content_type"], "text/markdown");

    let bytes = pdf(&[
        "The lighthouse keeper trims the wick at dusk.",
        "Fresnel lenses focus the beam (far out to sea).",
    ]);
    let res = app
        .post_multipart(
            DOCUMENTS,
            &t,
            &[
                ("title", None, None, b"Keeper's log"),
                ("file", Some("log.pdf"), Some("application/pdf"), &bytes),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let log = res.json();
    assert_eq!(log["title"], "Keeper's log");
    assert_eq!(log["content_type"], "application/pdf");
    let hits = search(&app, &t, "fresnel lenses").await;
    assert_eq!(hits[0]["document_id"], log["id"], "{hits:?}");

    // Refusals store nothing: a PDF without text, a file that is not a PDF, another kind of
    // file, a file over the inline limit (at its edge), no file at all.
    let blank = pdf(&[]);
    let res = app
        .post_multipart(
            DOCUMENTS,
            &t,
            &[("file", Some("scan.pdf"), Some("application/pdf"), &blank)],
        )
        .await;
    assert_eq!(res.invalid_fields(), ["file"], "{}", res.text());
    assert!(res.text().contains("no extractable text"), "{}", res.text());
    let res = app
        .post_multipart(
            DOCUMENTS,
            &t,
            &[("file", Some("bad.pdf"), None, b"%PDF-1.7 not really")],
        )
        .await;
    assert_eq!(res.invalid_fields(), ["file"], "{}", res.text());
    let res = app
        .post_multipart(
            DOCUMENTS,
            &t,
            &[(
                "file",
                Some("x.png"),
                Some("image/png"),
                b"\x89PNG\r\n\x1a\n",
            )],
        )
        .await;
    res.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let edge = "word ".repeat(4000);
    assert_eq!(edge.len(), 20000);
    let res = app
        .post_multipart(
            DOCUMENTS,
            &t,
            &[(
                "file",
                Some("edge.txt"),
                Some("text/plain"),
                edge.as_bytes(),
            )],
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let over = format!("{edge}x");
    let res = app
        .post_multipart(
            DOCUMENTS,
            &t,
            &[(
                "file",
                Some("over.txt"),
                Some("text/plain"),
                over.as_bytes(),
            )],
        )
        .await;
    res.problem(StatusCode::PAYLOAD_TOO_LARGE);
    let res = app
        .post_multipart(DOCUMENTS, &t, &[("note", None, None, b"no file")])
        .await;
    assert_eq!(res.invalid_fields(), ["file"]);

    // From a ready attachment of the user's; another user's is not found.
    let res = app
        .post_multipart(
            "/api/v1/attachments",
            &t,
            &[(
                "file",
                Some("recipe.txt"),
                Some("text/plain"),
                b"Knead the sourdough and let it prove.",
            )],
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let attachment = res.json()["id"].as_str().unwrap().to_string();
    let res = app
        .post(DOCUMENTS, json!({"attachment_id": attachment}), Some(&t))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let recipe = res.json();
    assert_eq!(recipe["title"], "recipe");
    assert_eq!(recipe["content_type"], "text/plain");
    assert_eq!(
        search(&app, &t, "sourdough").await[0]["document_id"],
        recipe["id"]
    );
    let res = app
        .post(
            DOCUMENTS,
            json!({"attachment_id": attachment}),
            Some(&other),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["attachment_id"]);
    let res = app
        .post(
            DOCUMENTS,
            json!({"attachment_id": attachment, "content": "x", "title": "x"}),
            Some(&t),
        )
        .await;
    assert_eq!(res.invalid_fields(), ["attachment_id"]);
    let res = app.post(DOCUMENTS, json!({"title": "x"}), Some(&t)).await;
    assert_eq!(res.invalid_fields(), ["content"]);

    let list = app.get(DOCUMENTS, Some(&t)).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 4, "{list}");
    assert_eq!(
        app.get(DOCUMENTS, Some(&other)).await.json()["items"],
        json!([])
    );
}

/// An embeddings endpoint that speaks OpenAI's wire format, or Titan's on Bedrock's InvokeModel,
/// and answers with the offline embedder's vectors of each input (so ranking can be checked
/// through the remote path); tokens are one per word.
struct Embeddings {
    titan: bool,
}

impl wiremock::Respond for Embeddings {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = request.body_json().unwrap();
        let tokens = |t: &str| t.split_whitespace().count() as u64;
        if self.titan {
            let text = body["inputText"].as_str().unwrap();
            return ResponseTemplate::new(200).set_body_json(json!({
                "embedding": codechat::knowledge::embedder::embed(text),
                "inputTextTokenCount": tokens(text),
            }));
        }
        let inputs: Vec<&str> = body["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": codechat::knowledge::embedder::embed(t)}))
            .collect();
        let total: u64 = inputs.iter().map(|t| tokens(t)).sum();
        ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }))
    }
}

async fn embedding_usage(app: &TestApp, admin: &str, model: &str) -> Value {
    let report = app
        .get("/api/v1/admin/usage?group_by=model", Some(admin))
        .await
        .json();
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == model)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_openai_embedding_model_is_batched_retried_billed_and_ranks() {
    let server = MockServer::start().await;
    // The first call is throttled once: retried, not failed.
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(Embeddings { titan: false })
        .mount(&server)
        .await;
    let app = TestApp::with_openai_server(
        &server,
        &[
            ("EMBEDDING_MODEL", "openai/text-embedding-3-small"),
            ("DEFAULT_MODEL", "local/echo"),
            ("BOOTSTRAP_ADMIN_EMAIL", "embed-admin@example.com"),
        ],
    )
    .await;
    let admin = app.register("embed-admin@example.com").await.access;
    let t = app.register("embed@example.com").await.access;
    let ids = add_labelled(&app, &t).await;
    let doc = app
        .get(&format!("{DOCUMENTS}/{}", ids[0]), Some(&t))
        .await
        .json();
    assert_eq!(doc["embedder"], "openai/text-embedding-3-small");
    let mut found = 0;
    for (i, (_, _, question)) in LABELLED.iter().enumerate() {
        let hits = search(&app, &t, question).await;
        found += hits
            .iter()
            .take(3)
            .any(|h| h["document_id"] == ids[i].as_str()) as usize;
    }
    assert!(found >= 9, "{found} of 10 in the top 3");

    // 70 sections are 70 chunks: two requests of at most 64 inputs, 256 dimensions asked for.
    let sections: String = (0..70)
        .map(|i| format!("# Part {i}\n\nsection{i} text\n\n"))
        .collect();
    let big = add(&app, &t, "Parts", &sections).await;
    assert_eq!(big["chunk_count"], 70);
    let sent = fakes::sent_bodies(&server).await;
    let batches: Vec<usize> = sent
        .iter()
        .rev()
        .take(2)
        .map(|b| b["input"].as_array().unwrap().len())
        .collect();
    assert_eq!(batches, [6, 64]);
    assert!(sent
        .iter()
        .all(|b| b["dimensions"] == 256 && b["model"] == "text-embedding-3-small"));

    // A query repeated within the cache's time makes no call.
    let calls = fakes::sent_bodies(&server).await.len();
    search(&app, &t, LABELLED[0].2).await;
    assert_eq!(fakes::sent_bodies(&server).await.len(), calls);

    // Every successful call is billed as an `embedding` usage row: documents and queries.
    let billed = embedding_usage(&app, &admin, "openai/text-embedding-3-small").await;
    let documents_and_searches = 10 + 1 + 10;
    assert_eq!(billed["calls"], documents_and_searches, "{billed}");
    assert!(billed["input_tokens"].as_i64().unwrap() > 0);
    assert!(billed["cost_usd"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn a_failing_embedding_model_stores_nothing_and_titan_speaks_invoke_model() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let app = TestApp::with_openai_server(
        &server,
        &[("EMBEDDING_MODEL", "openai/text-embedding-3-small")],
    )
    .await;
    let t = app.register("embed-fail@example.com").await.access;
    let res = app
        .post(
            DOCUMENTS,
            json!({"title": "T", "content": "some words"}),
            Some(&t),
        )
        .await;
    let problem = res.problem(StatusCode::BAD_GATEWAY);
    assert_eq!(problem["code"], "provider_unavailable");
    assert_eq!(
        app.get(DOCUMENTS, Some(&t)).await.json()["items"],
        json!([])
    );
    let calls = fakes::sent_bodies(&server).await.len();

    // A remote model's calls count against the daily budget: a blocked user is refused first.
    let app = TestApp::with_openai_server(
        &server,
        &[
            ("EMBEDDING_MODEL", "openai/text-embedding-3-small"),
            ("DEFAULT_DAILY_TOKEN_LIMIT", "0"),
        ],
    )
    .await;
    let t = app.register("embed-blocked@example.com").await.access;
    let res = app
        .post(
            DOCUMENTS,
            json!({"title": "T", "content": "some words"}),
            Some(&t),
        )
        .await;
    assert_eq!(
        res.problem(StatusCode::TOO_MANY_REQUESTS)["code"],
        "daily_token_limit"
    );
    assert_eq!(
        fakes::sent_bodies(&server).await.len(),
        calls,
        "no call was made"
    );

    let bedrock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path_regex("^/model/.+/invoke$"))
        .respond_with(Embeddings { titan: true })
        .mount(&bedrock)
        .await;
    let app = TestApp::with_bedrock_fake(
        &bedrock.uri(),
        &[("EMBEDDING_MODEL", "bedrock/amazon.titan-embed-text-v2:0")],
    )
    .await;
    let t = app.register("titan@example.com").await.access;
    let doc = add(
        &app,
        &t,
        "Kettles",
        "# Kettles\n\nThe kettle whistles.\n\n# Pots\n\nPots simmer.",
    )
    .await;
    assert_eq!(doc["embedder"], "bedrock/amazon.titan-embed-text-v2:0");
    let sent = fakes::sent_bodies(&bedrock).await;
    assert_eq!(sent.len(), 2, "one call a chunk");
    assert_eq!(sent[0]["dimensions"], 256);
    assert_eq!(sent[0]["normalize"], true);
    assert!(sent[0]["inputText"]
        .as_str()
        .unwrap()
        .contains("kettle whistles"));
    let hits = search(&app, &t, "kettle").await;
    assert_eq!(hits[0]["heading"], "Kettles");
}

#[tokio::test]
async fn retrieval_with_a_remote_model_is_reserved_before_the_query_is_embedded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(Embeddings { titan: false })
        .mount(&server)
        .await;
    let app = TestApp::with_openai_server(
        &server,
        &[
            ("EMBEDDING_MODEL", "openai/text-embedding-3-small"),
            ("DEFAULT_MODEL", "local/echo"),
            ("BOOTSTRAP_ADMIN_EMAIL", "kb-quota-admin@example.com"),
            ("KNOWLEDGE_CONTEXT_TOKENS", "1500"),
        ],
    )
    .await;
    let admin = app.register("kb-quota-admin@example.com").await.access;
    let user = app.register("kb-quota@example.com").await;
    let t = &user.access;
    add(
        &app,
        t,
        "Kettles",
        "# Kettles\n\nThe kettle whistles when the water boils.",
    )
    .await;
    let calls = fakes::sent_bodies(&server).await.len();
    let model = "openai/text-embedding-3-small";
    assert_eq!(embedding_usage(&app, &admin, model).await["calls"], 1);

    // A budget that takes the turn but not the sources' room as well: refused before the
    // question is embedded, nothing stored or billed.
    app.set_daily_limit(&admin, &user, json!(1000)).await;
    let question = "why does the kettle whistle";
    let turn = json!({"message": question, "knowledge": true, "max_tokens": 50});
    let res = app.post("/api/v1/chat", turn.clone(), Some(t)).await;
    assert_eq!(
        res.problem(StatusCode::TOO_MANY_REQUESTS)["code"],
        "daily_token_limit"
    );
    assert_eq!(fakes::sent_bodies(&server).await.len(), calls, "no call");
    assert_eq!(embedding_usage(&app, &admin, model).await["calls"], 1);
    let list = app.get("/api/v1/conversations", Some(t)).await.json();
    assert_eq!(list["items"], json!([]));
    // The same turn without retrieval fits.
    let res = app
        .post(
            "/api/v1/chat",
            json!({"message": question, "max_tokens": 50}),
            Some(t),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    // With room for the sources: one query call, billed, and the answer cites the document.
    app.set_daily_limit(&admin, &user, json!(10_000)).await;
    let res = app.post("/api/v1/chat", turn, Some(t)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json()["assistant_message"]["citations"][0]["title"],
        "Kettles"
    );
    assert_eq!(fakes::sent_bodies(&server).await.len(), calls + 1);
    assert_eq!(embedding_usage(&app, &admin, model).await["calls"], 2);

    // A blocked user's search is refused before its call; the offline path has no such cost.
    app.set_daily_limit(&admin, &user, json!(0)).await;
    let res = app
        .get("/api/v1/knowledge/search?q=boiling%20water", Some(t))
        .await;
    assert_eq!(
        res.problem(StatusCode::TOO_MANY_REQUESTS)["code"],
        "daily_token_limit"
    );
    assert_eq!(fakes::sent_bodies(&server).await.len(), calls + 1);
}

#[tokio::test]
async fn titan_throttling_is_retried_and_its_failures_store_nothing() {
    let titan = "bedrock/amazon.titan-embed-text-v2:0";
    let kettle = json!({"title": "Kettles", "content": "The kettle whistles."});
    let throttled = ResponseTemplate::new(429)
        .insert_header("x-amzn-errortype", "ThrottlingException")
        .set_body_json(json!({"message": "Too many requests"}));

    // Throttled once: retried, the document indexed.
    let bedrock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(throttled.clone())
        .up_to_n_times(1)
        .mount(&bedrock)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path_regex("^/model/.+/invoke$"))
        .respond_with(Embeddings { titan: true })
        .mount(&bedrock)
        .await;
    let app = TestApp::with_bedrock_fake(
        &bedrock.uri(),
        &[("EMBEDDING_MODEL", titan), ("PROVIDER_RETRY_BASE_MS", "1")],
    )
    .await;
    let t = app.register("titan-retry@example.com").await.access;
    let res = app.post(DOCUMENTS, kettle.clone(), Some(&t)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(bedrock.received_requests().await.unwrap().len(), 2);

    // Persistent throttling, a vector of the wrong length, and no answer in time: each a problem
    // naming the provider's failure (never its own text), and no document stored.
    let wrong_length = ResponseTemplate::new(200)
        .set_body_json(json!({"embedding": [0.1, 0.2, 0.3], "inputTextTokenCount": 3}));
    let slow = ResponseTemplate::new(200)
        .set_delay(std::time::Duration::from_secs(3))
        .set_body_json(json!({"embedding": vec![0.0; 256], "inputTextTokenCount": 3}));
    for (answer, status, code) in [
        (throttled, StatusCode::BAD_GATEWAY, "provider_throttled"),
        (
            wrong_length,
            StatusCode::BAD_GATEWAY,
            "provider_unavailable",
        ),
        (slow, StatusCode::GATEWAY_TIMEOUT, "timeout"),
    ] {
        let bedrock = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&bedrock)
            .await;
        let app = TestApp::with_bedrock_fake(
            &bedrock.uri(),
            &[
                ("EMBEDDING_MODEL", titan),
                ("PROVIDER_RETRY_BASE_MS", "1"),
                ("PROVIDER_MAX_ATTEMPTS", "2"),
                ("PROVIDER_TIMEOUT_SECONDS", "1"),
            ],
        )
        .await;
        let t = app.register("titan-fails@example.com").await.access;
        let res = app.post(DOCUMENTS, kettle.clone(), Some(&t)).await;
        let problem = res.problem(status);
        assert_eq!(problem["code"], code, "{problem}");
        assert!(!problem.to_string().contains("Too many"), "{problem}");
        assert_eq!(bedrock.received_requests().await.unwrap().len(), 2);
        assert_eq!(
            app.get(DOCUMENTS, Some(&t)).await.json()["items"],
            json!([])
        );
        // A search fails the same way rather than answering without its vector half.
        let res = app.get("/api/v1/knowledge/search?q=kettle", Some(&t)).await;
        assert_eq!(res.problem(status)["code"], code);
    }
}

/// A Markdown document about airships of `paragraphs` repeated sentences, its last sentence
/// about a zeppelin (so a search can ask for the last chunk).
fn airships(paragraphs: usize) -> String {
    format!(
        "# Airships\n\n{}\n\nThe zeppelin floats over the harbour.",
        "Lighter than air craft drift slowly over fields. ".repeat(paragraphs)
    )
}

/// The "Object Created" event of a large document's text, as EventBridge delivers it.
fn text_created(user_id: &str, document_id: &str) -> Value {
    serde_json::from_str(
        &codechat_api_tests::repo_file("events/unpacker-object-created.json")
            .replace("project-zips/", "knowledge/")
            .replace("REPLACE_WITH_USER_ID", user_id)
            .replace("REPLACE_WITH_UPLOAD_ID", document_id),
    )
    .unwrap()
}

/// The worker's handler, as the Lambda runtime calls it.
fn worker(
    state: codechat::AppState,
    event: Value,
) -> futures_util::future::BoxFuture<'static, Result<Value, codechat::function::BoxError>> {
    let codechat::function::Transport::Worker(handler) =
        codechat::api::unpacker::FUNCTION.transport
    else {
        panic!("the unpacker is a worker");
    };
    handler(state, event)
}

/// A document over `MAX_INDEX_IN_REQUEST_BYTES` answers 202 and is indexed next: locally by a
/// task of the process, deployed by the worker on its text's "Object Created" event (fed here as
/// EventBridge delivers it, twice at once, since delivery is at least once).
#[tokio::test]
async fn a_large_document_is_indexed_after_the_request_locally_and_by_the_worker() {
    let text = airships(60);
    let limit = (text.len() - 1).to_string();
    for in_worker in [false, true] {
        let mut env = vec![("MAX_INDEX_IN_REQUEST_BYTES", limit.as_str())];
        if in_worker {
            env.push(("UNPACK_IN_WORKER", "true"));
        }
        let app = TestApp::with_env(&env).await;
        let t = app.register("large-doc@example.com").await.access;
        let user_id = app.me(&t).await.json()["id"].as_str().unwrap().to_string();
        // At the line: indexed inside the request.
        let res = app
            .post(
                DOCUMENTS,
                json!({"title": "Edge", "content": &text[..text.len() - 1]}),
                Some(&t),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        assert_eq!(res.json()["status"], "ready");

        let res = app
            .post(
                DOCUMENTS,
                json!({"title": "Airships", "content": text}),
                Some(&t),
            )
            .await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text());
        let doc = res.json();
        let id = doc["id"].as_str().unwrap().to_string();
        let url = format!("{DOCUMENTS}/{id}");
        assert_eq!(res.headers[axum::http::header::LOCATION], url.as_str());
        assert_eq!(doc["status"], "indexing");
        assert_eq!(doc["chunk_count"], 0);
        if in_worker {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            assert_eq!(app.get(&url, Some(&t)).await.json()["status"], "indexing");
            let event = text_created(&user_id, &id);
            let (a, b) = tokio::join!(
                worker(app.state.clone(), event.clone()),
                worker(app.state.clone(), event.clone())
            );
            assert_eq!(a.unwrap()["documents"], 1);
            assert_eq!(b.unwrap()["documents"], 1);
        }
        let ready = codechat_api_tests::eventually(|| async {
            app.get(&url, Some(&t)).await.json()["status"] == "ready"
        })
        .await;
        assert!(ready, "in_worker={in_worker}");
        let doc = app.get(&url, Some(&t)).await.json();
        let chunks = doc["chunk_count"].as_i64().unwrap();
        assert!(chunks > 1, "{doc}");
        // Indexed once: each of its chunks is found once, the sentence asked for first.
        let hits = search(&app, &t, "zeppelin harbour").await;
        let found: Vec<&Value> = hits.iter().filter(|h| h["document_id"] == id).collect();
        assert_eq!(found[0]["chunk"], chunks - 1, "{hits:?}");
        let mut ords: Vec<i64> = found.iter().map(|h| h["chunk"].as_i64().unwrap()).collect();
        ords.sort();
        ords.dedup();
        assert_eq!(ords.len(), found.len(), "{hits:?}");
        // The waiting text is removed once indexed.
        let key = codechat::blobs::BlobKey::knowledge_text(&user_id, &id);
        assert!(app.state.blobs().read_all(&key).await.is_err());

        // Deleted while it waits: its text goes, and a later event finds nothing to do.
        if in_worker {
            let res = app
                .post(
                    DOCUMENTS,
                    json!({"title": "Gone", "content": text}),
                    Some(&t),
                )
                .await;
            assert_eq!(res.status, StatusCode::ACCEPTED);
            let gone = res.json()["id"].as_str().unwrap().to_string();
            let res = app.delete(&format!("{DOCUMENTS}/{gone}"), Some(&t)).await;
            assert_eq!(res.status, StatusCode::NO_CONTENT);
            let key = codechat::blobs::BlobKey::knowledge_text(&user_id, &gone);
            assert!(app.state.blobs().read_all(&key).await.is_err());
            let event = text_created(&user_id, &gone);
            worker(app.state.clone(), event).await.unwrap();
            app.get(&format!("{DOCUMENTS}/{gone}"), Some(&t))
                .await
                .problem(StatusCode::NOT_FOUND);
        }
    }
}

/// An embedding model that fails while a large document is indexed after the answer leaves the
/// document `failed` with the provider's public reason, and nothing of it searchable.
#[tokio::test]
async fn a_large_document_whose_embedding_fails_is_marked_failed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(500).set_body_string("internal secret detail"))
        .mount(&server)
        .await;
    let app = TestApp::with_openai_server(
        &server,
        &[
            ("EMBEDDING_MODEL", "openai/text-embedding-3-small"),
            ("MAX_INDEX_IN_REQUEST_BYTES", "10"),
            ("PROVIDER_MAX_ATTEMPTS", "1"),
        ],
    )
    .await;
    let t = app.register("large-fails@example.com").await.access;
    let res = app
        .post(
            DOCUMENTS,
            json!({"title": "Kettles", "content": "The kettle whistles when the water boils."}),
            Some(&t),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text());
    let url = format!("{DOCUMENTS}/{}", res.json()["id"].as_str().unwrap());
    let failed = codechat_api_tests::eventually(|| async {
        app.get(&url, Some(&t)).await.json()["status"] == "failed"
    })
    .await;
    assert!(failed);
    let doc = app.get(&url, Some(&t)).await.json();
    assert_eq!(
        doc["error"],
        "the model provider is unavailable; try again later"
    );
    assert_eq!(doc["chunk_count"], 0);
    assert!(!doc.to_string().contains("secret"), "{doc}");

    // The budget is checked when such a document is added: a blocked user is refused, and no
    // document or text is left waiting.
    let app = TestApp::with_openai_server(
        &server,
        &[
            ("EMBEDDING_MODEL", "openai/text-embedding-3-small"),
            ("MAX_INDEX_IN_REQUEST_BYTES", "10"),
            ("DEFAULT_DAILY_TOKEN_LIMIT", "0"),
        ],
    )
    .await;
    let calls = fakes::sent_bodies(&server).await.len();
    let t = app.register("large-blocked@example.com").await.access;
    let res = app
        .post(
            DOCUMENTS,
            json!({"title": "Kettles", "content": "The kettle whistles when the water boils."}),
            Some(&t),
        )
        .await;
    assert_eq!(
        res.problem(StatusCode::TOO_MANY_REQUESTS)["code"],
        "daily_token_limit"
    );
    assert_eq!(
        app.get(DOCUMENTS, Some(&t)).await.json()["items"],
        json!([])
    );
    assert_eq!(fakes::sent_bodies(&server).await.len(), calls);
}

/// A time long past, as the store writes times: a lease that has run out.
const LONG_AGO: &str = "2000-01-01T00:00:00.000000Z";

/// Indexing writes a document's chunks in batches behind `indexing`, so a run can die part-way.
/// The worker's retry resumes it after the chunks already stored (not storing or embedding them
/// again) and it ends complete; a request's run that died leaves no text to resume from, and the
/// sweep before the next new document removes it, chunks included.
#[tokio::test]
async fn a_run_that_died_part_way_is_resumed_or_swept() {
    use codechat::{ids::DocumentId, store::NewChunk};
    let text = airships(120);
    let limit = (text.len() - 1).to_string();
    let app = TestApp::with_env(&[
        ("MAX_INDEX_IN_REQUEST_BYTES", limit.as_str()),
        ("UNPACK_IN_WORKER", "true"),
    ])
    .await;
    let t = app.register("died@example.com").await.access;
    let user_id = app.user_id(&t).await;
    let conn = app.state.store().conn().await.unwrap();
    let stored_chunk = |ord: i64, content: &str| NewChunk {
        ord,
        heading: "Airships".into(),
        content: content.into(),
        tokens: 4,
        embedding: None,
    };

    // The worker's run claimed it, stored two chunks, and died; its claim has run out.
    let res = app
        .post(
            DOCUMENTS,
            json!({"title": "Airships", "content": text}),
            Some(&t),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text());
    let id: DocumentId = res.json()["id"].as_str().unwrap().parse().unwrap();
    let now = codechat::ids::now();
    assert!(conn
        .claim_indexing(id, user_id, &now, LONG_AGO)
        .await
        .unwrap()
        .is_some());
    let first_two = [
        stored_chunk(0, "the first run stored this quokka"),
        stored_chunk(1, "and this"),
    ];
    assert!(conn.add_chunks(id, user_id, &first_two).await.unwrap());
    // Not ready, so no search finds what it has so far.
    assert!(search(&app, &t, "quokka").await.is_empty());
    let url = format!("{DOCUMENTS}/{id}");
    assert_eq!(app.get(&url, Some(&t)).await.json()["status"], "indexing");

    // A new document's sweep leaves it alone: its text waits for the retry.
    add(&app, &t, "Other", "Something else entirely.").await;
    assert_eq!(app.get(&url, Some(&t)).await.json()["status"], "indexing");

    worker(
        app.state.clone(),
        text_created(&user_id.to_string(), &id.to_string()),
    )
    .await
    .unwrap();
    let doc = app.get(&url, Some(&t)).await.json();
    assert_eq!(doc["status"], "ready", "{doc}");
    let total = doc["chunk_count"].as_i64().unwrap();
    assert!(total > 3, "{doc}");
    // Resumed after the two it had: those kept as stored, the rest added once each.
    assert_eq!(search(&app, &t, "quokka").await[0]["chunk"], 0);
    let hits = search(&app, &t, "zeppelin harbour").await;
    let last: Vec<&Value> = hits
        .iter()
        .filter(|h| h["document_id"] == doc["id"])
        .collect();
    assert_eq!(last[0]["chunk"], total - 1, "{hits:?}");
    assert_eq!(conn.indexed_through(id).await.unwrap(), Some(total - 1));

    // A request's run stored a batch and died: no text to resume from, so the sweep removes it.
    let dead = conn
        .insert_indexing_document(
            codechat::ids::DocumentId::new(),
            codechat::store::NewDocument {
                user_id,
                title: "Half",
                content_type: "text/plain",
                size: 10,
                sha256: "0",
                embedder: Some("local"),
            },
            Some(LONG_AGO),
            codechat::store::DocumentCaps::NONE,
        )
        .await
        .unwrap();
    assert!(conn
        .add_chunks(dead.id, user_id, &[stored_chunk(0, "a half-stored wombat")])
        .await
        .unwrap());
    let dead_url = format!("{DOCUMENTS}/{}", dead.id);
    assert_eq!(app.get(&dead_url, Some(&t)).await.status, StatusCode::OK);
    add(&app, &t, "Next", "The next document sweeps.").await;
    app.get(&dead_url, Some(&t))
        .await
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(conn.indexed_through(dead.id).await.unwrap(), None);
    // A run whose lease ran out cannot finish it after the sweep's decision.
    assert!(!conn
        .finish_indexing(dead.id, user_id, 1, None)
        .await
        .unwrap());
}

/// A document indexed after its request keeps its reservation until that indexing bills: two large
/// documents back to back cannot both pass a budget that holds one.
#[tokio::test]
async fn a_large_documents_reservation_is_kept_until_it_is_billed() {
    let app = TestApp::with_openai_fake(
        "http://127.0.0.1:9/v1",
        &[
            ("EMBEDDING_MODEL", "openai/text-embedding-3-small"),
            ("MAX_INDEX_IN_REQUEST_BYTES", "100"),
            // Deployed-style: the worker indexes it (not run here), so nothing bills yet.
            ("UNPACK_IN_WORKER", "true"),
            ("BOOTSTRAP_ADMIN_EMAIL", "kb-hold-admin@example.com"),
        ],
    )
    .await;
    let admin = app.register("kb-hold-admin@example.com").await;
    let user = app.register("kb-hold@example.com").await;
    app.set_daily_limit(&admin.access, &user, json!(1500)).await;
    // About 1 000 tokens each (four characters a token).
    let text = "word ".repeat(800);
    let res = app
        .post(
            DOCUMENTS,
            json!({"title": "One", "content": text}),
            Some(&user.access),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text());
    let res = app
        .post(
            DOCUMENTS,
            json!({"title": "Two", "content": text}),
            Some(&user.access),
        )
        .await;
    let p = res.problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(p["code"], "daily_token_limit", "{p}");
    let docs = app.get(DOCUMENTS, Some(&user.access)).await.json();
    assert_eq!(docs["items"].as_array().unwrap().len(), 1, "{docs}");
}
