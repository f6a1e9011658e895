//! `genc lsp` driven as an editor drives it — JSON-RPC over its stdio — with the answers kept as
//! a snapshot; and every request answered on prefixes of every shipped spec, as a file looks
//! while it is typed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: i64,
    /// Notifications read while waiting for a response.
    notifications: Vec<Value>,
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_genc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run genc lsp: {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        let stdout = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("no stdout")));
        Client { child, stdin, stdout, next_id: 1, notifications: Vec::new() }
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap_or_else(|e| panic!("{e}"));
        self.stdin.flush().unwrap_or_else(|e| panic!("{e}"));
    }

    fn receive(&mut self) -> Value {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.stdout.read_line(&mut line).unwrap_or_else(|e| panic!("{e}"));
            assert!(!line.is_empty(), "genc lsp closed its output");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(n) = line.strip_prefix("Content-Length: ") {
                length = n.parse().unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let mut body = vec![0u8; length];
        self.stdout.read_exact(&mut body).unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"))
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self.receive();
            if message["id"] == id {
                return message;
            }
            self.notifications.push(message);
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// The next `textDocument/publishDiagnostics`, from those read already or the stream.
    fn diagnostics(&mut self) -> Value {
        let is_publish = |m: &Value| m["method"] == "textDocument/publishDiagnostics";
        if let Some(i) = self.notifications.iter().position(is_publish) {
            return self.notifications.remove(i)["params"].clone();
        }
        loop {
            let message = self.receive();
            if is_publish(&message) {
                return message["params"].clone();
            }
        }
    }
}

const URI: &str = "file:///work/specs/dcgan.gen";

/// The position `delta` bytes into the first occurrence of `needle`.
fn position(text: &str, needle: &str, delta: usize) -> Value {
    let at = text.find(needle).unwrap_or_else(|| panic!("no {needle}")) + delta;
    let line = text[..at].matches('\n').count();
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1);
    json!({"line": line, "character": column})
}

#[test]
fn an_editor_session() {
    let spec = common::read(&common::root().join("specs/dcgan.gen"));
    let mut client = Client::start();
    let init = client.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {}, "initializationOptions": {"set": ["ngf=32"]}}),
    );
    assert_eq!(init["result"]["capabilities"]["hoverProvider"], true, "{init}");
    client.notify("initialized", json!({}));
    let mut transcript = String::new();
    let mut record = |what: &str, value: &Value| {
        transcript
            .push_str(&format!("== {what}\n{}\n", serde_json::to_string_pretty(value).unwrap_or_default()));
    };

    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": URI, "languageId": "gen", "version": 1, "text": spec}}),
    );
    let clean = client.diagnostics();
    assert_eq!(clean["diagnostics"], json!([]), "{clean}");

    let mut hover = |needle: &str, delta: usize| {
        client.request(
            "textDocument/hover",
            json!({"textDocument": {"uri": URI}, "position": position(&spec, needle, delta)}),
        )["result"]
            .clone()
    };
    record("hover on the net G (ngf=32 from the initialization options)", &hover("net G(", 4));
    record("hover in a layer call's arguments", &hover("kernel: 4, stride: 2, pad: 1, bias: false)", 8));
    record("hover on a bound dim", &hover("Z = 100", 0));
    record("hover on the batch dim", &hover("B = 128", 0));
    record("hover on a param", &hover("ngf = 64", 0));
    record("hover on a built-in", &hover("leaky_relu", 2));
    record("hover on a layer", &hover("conv_transpose2d(ngf", 2));
    let definition = client.request(
        "textDocument/definition",
        json!({"textDocument": {"uri": URI}, "position": position(&spec, "G(2", 0)}),
    );
    record("definition of G where it is called", &definition["result"]);
    let symbols = client.request("textDocument/documentSymbol", json!({"textDocument": {"uri": URI}}));
    let names: Vec<&str> = symbols["result"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    record("document symbols", &json!(names));
    let completion = client.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": URI}, "position": {"line": 0, "character": 0}}),
    );
    let labels: Vec<&str> = completion["result"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["label"].as_str()).collect())
        .unwrap_or_default();
    for wanted in ["conv2d", "batch_norm", "kernel:", "train", "G", "Z"] {
        assert!(labels.contains(&wanted), "completion lacks {wanted}: {labels:?}");
    }

    // Typing: a wrong layer size, then a half-typed line; diagnostics follow each settled text.
    let wrong = spec.replacen("linear(1)", "linear(2)", 1);
    assert_ne!(wrong, spec, "specs/dcgan.gen changed: update this test");
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 2}, "contentChanges": [{"text": wrong}]}),
    );
    let typed = client.diagnostics();
    record("diagnostics of a type error", &typed);
    let half = spec.replacen("    return h |>", "    return h |> conv2d(", 1);
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 3}, "contentChanges": [{"text": half}]}),
    );
    let syntax = client.diagnostics();
    let codes: Vec<&str> = syntax["diagnostics"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["code"].as_str()).collect())
        .unwrap_or_default();
    assert!(!codes.is_empty() && codes.iter().all(|c| c.starts_with("E00")), "{syntax}");
    let ugly = spec.replacen("dims B,", "dims   B ,", 1);
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 4}, "contentChanges": [{"text": ugly}]}),
    );
    let format = client.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": URI}, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    let edits = format["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(edits.len(), 1, "{format}");
    assert_eq!(edits[0]["newText"].as_str(), Some(spec.as_str()), "formatting restores the canonical layout");

    let unknown = client.request("genc/unknown", json!({}));
    assert_eq!(unknown["error"]["code"], -32601);
    let shutdown = client.request("shutdown", json!(null));
    assert_eq!(shutdown["result"], Value::Null);
    client.notify("exit", json!(null));
    let status = client.child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    insta::assert_snapshot!("lsp_session", transcript);
}

/// Every request on prefixes of every shipped spec (each character of the smallest, every
/// 23rd of the rest): each gets an answer and nothing panics.
#[test]
fn every_prefix_of_every_spec_gets_answers() {
    use genc::commands::lsp::{Document, features};
    let uri = lsp_types::Url::parse("file:///spec.gen").unwrap_or_else(|e| panic!("{e}"));
    for path in common::gen_files("specs") {
        let text = common::read(&path);
        let step = if path.ends_with("ae.gen") { 1 } else { 23 };
        let ends: Vec<usize> = (0..text.len()).step_by(step).filter(|&i| text.is_char_boundary(i)).collect();
        for end in ends {
            let prefix = &text[..end];
            let doc = Document::analyse(uri.clone(), prefix.to_string(), &[]);
            let _ = doc.diagnostics();
            for offset in [0, end / 2, end] {
                let _ = features::hover(&doc, offset);
                let _ = features::definition(&doc, offset);
            }
            let _ = features::symbols(&doc);
            let _ = features::formatting(&doc);
            assert!(!features::completion(&doc).is_empty());
        }
    }
}
