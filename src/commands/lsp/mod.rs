//! `genc lsp`: a language server over stdio for `.gen` files.
//!
//! Built on `lsp-server` and `lsp-types`, the crates rust-analyzer is built on: a synchronous
//! message loop is all a checker that answers in milliseconds needs, with no async runtime to
//! carry (tower-lsp would bring tokio).
//!
//! - Diagnostics when a file opens and, debounced ([`DEBOUNCE`]), after it changes: the codes,
//!   spans, labels and help of `genc check`, secondary labels as related information. The
//!   `--set` overrides come from the `set` list of the initialization options or of the
//!   `genc` settings (`workspace/didChangeConfiguration`).
//! - Hover, go to definition, document symbols, formatting (`genc fmt`) and completion
//!   ([`features`]).
//! - Every request is answered: a request that panics (a bug) gets an error response and the
//!   server goes on.

mod convert;
mod document;
pub mod features;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeConfiguration, DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument,
    Notification as _, PublishDiagnostics,
};
use lsp_types::request::{
    Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest, Request as _,
};
use lsp_types::{
    CompletionOptions, CompletionResponse, DocumentSymbolResponse, GotoDefinitionResponse,
    HoverProviderCapability, OneOf, PublishDiagnosticsParams, ServerCapabilities, TextDocumentPositionParams,
    TextDocumentSyncCapability, TextDocumentSyncKind, Url,
};

pub use document::Document;

use super::Status;

/// How long a file must stay unchanged before its diagnostics are recomputed.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

pub fn run() -> Status {
    let (connection, io) = Connection::stdio();
    let result = serve(&connection);
    drop(connection);
    let _ = io.join();
    match result {
        Ok(()) => Status::Ok,
        Err(message) => {
            eprintln!("error: genc lsp: {message}");
            Status::Usage
        }
    }
}

/// The open files, and the overrides they are checked with.
struct Server {
    texts: HashMap<Url, String>,
    documents: HashMap<Url, Document>,
    /// Files changed since their diagnostics were published, and when.
    dirty: HashMap<Url, Instant>,
    sets: Vec<String>,
}

fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions::default()),
        ..Default::default()
    }
}

fn serve(connection: &Connection) -> Result<(), String> {
    let caps = serde_json::to_value(capabilities()).map_err(|e| e.to_string())?;
    let init = connection.initialize(caps).map_err(|e| e.to_string())?;
    let mut server =
        Server { texts: HashMap::new(), documents: HashMap::new(), dirty: HashMap::new(), sets: Vec::new() };
    server.sets = sets_from(init.get("initializationOptions"));
    loop {
        let wait =
            server.dirty.values().map(|t| (*t + DEBOUNCE).saturating_duration_since(Instant::now())).min();
        let message = match wait {
            Some(w) => connection.receiver.recv_timeout(w),
            None => connection.receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match message {
            Ok(Message::Request(req)) => {
                if connection.handle_shutdown(&req).map_err(|e| e.to_string())? {
                    return Ok(());
                }
                let response = server.answer(req);
                connection.sender.send(Message::Response(response)).map_err(|e| e.to_string())?;
            }
            Ok(Message::Notification(n)) => {
                for publish in server.notified(n) {
                    connection.sender.send(publish).map_err(|e| e.to_string())?;
                }
            }
            Ok(Message::Response(_)) => {}
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        for publish in server.settled() {
            connection.sender.send(publish).map_err(|e| e.to_string())?;
        }
    }
}

/// `{"set": ["H=32", ..]}` from initialization options or settings (also under `genc`).
fn sets_from(options: Option<&serde_json::Value>) -> Vec<String> {
    let options = options.map(|o| o.get("genc").unwrap_or(o));
    let list = options.and_then(|o| o.get("set")).and_then(|s| s.as_array());
    list.map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

impl Server {
    /// The analysed document for `uri`, analysing its text now if it changed.
    fn document(&mut self, uri: &Url) -> Option<&Document> {
        if !self.documents.contains_key(uri) {
            let text = self.texts.get(uri)?.clone();
            self.documents.insert(uri.clone(), Document::analyse(uri.clone(), text, &self.sets));
        }
        self.documents.get(uri)
    }

    fn publish(&mut self, uri: &Url) -> Option<Message> {
        let diagnostics = self.document(uri)?.diagnostics();
        let params = PublishDiagnosticsParams { uri: uri.clone(), diagnostics, version: None };
        Some(Message::Notification(Notification::new(PublishDiagnostics::METHOD.to_string(), params)))
    }

    /// Diagnostics of the files that have stayed unchanged for [`DEBOUNCE`].
    fn settled(&mut self) -> Vec<Message> {
        let now = Instant::now();
        let ready: Vec<Url> =
            self.dirty.iter().filter(|(_, t)| now >= **t + DEBOUNCE).map(|(u, _)| u.clone()).collect();
        ready
            .into_iter()
            .filter_map(|uri| {
                self.dirty.remove(&uri);
                self.publish(&uri)
            })
            .collect()
    }

    /// Applies a notification; returns what to publish at once.
    fn notified(&mut self, n: Notification) -> Vec<Message> {
        match n.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<lsp_types::DidOpenTextDocumentParams>(n.params) else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                self.texts.insert(uri.clone(), p.text_document.text);
                self.documents.remove(&uri);
                self.publish(&uri).into_iter().collect()
            }
            DidChangeTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<lsp_types::DidChangeTextDocumentParams>(n.params) else {
                    return Vec::new();
                };
                // Full sync: the last change holds the whole text.
                if let Some(change) = p.content_changes.into_iter().last() {
                    let uri = p.text_document.uri;
                    self.texts.insert(uri.clone(), change.text);
                    self.documents.remove(&uri);
                    self.dirty.insert(uri, Instant::now());
                }
                Vec::new()
            }
            DidCloseTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<lsp_types::DidCloseTextDocumentParams>(n.params) else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                self.texts.remove(&uri);
                self.documents.remove(&uri);
                self.dirty.remove(&uri);
                let params = PublishDiagnosticsParams { uri, diagnostics: Vec::new(), version: None };
                vec![Message::Notification(Notification::new(PublishDiagnostics::METHOD.to_string(), params))]
            }
            DidChangeConfiguration::METHOD => {
                let Ok(p) = serde_json::from_value::<lsp_types::DidChangeConfigurationParams>(n.params)
                else {
                    return Vec::new();
                };
                self.sets = sets_from(Some(&p.settings));
                self.documents.clear();
                let open: Vec<Url> = self.texts.keys().cloned().collect();
                open.iter().filter_map(|u| self.publish(u)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The response to a request; a panic while answering (a bug) becomes an error response.
    fn answer(&mut self, req: Request) -> Response {
        let id = req.id.clone();
        match catch_unwind(AssertUnwindSafe(|| self.dispatch(req))) {
            Ok(Ok(value)) => Response::new_ok(id, value),
            Ok(Err((code, message))) => Response::new_err(id, code as i32, message),
            Err(_) => Response::new_err(
                id,
                ErrorCode::InternalError as i32,
                "genc lsp failed on this request (a bug in genc: please report it with the file)".into(),
            ),
        }
    }

    fn dispatch(&mut self, req: Request) -> Result<serde_json::Value, (ErrorCode, String)> {
        let bad = |e: serde_json::Error| (ErrorCode::InvalidParams, e.to_string());
        let json = |v: serde_json::Result<serde_json::Value>| {
            v.map_err(|e| (ErrorCode::InternalError, e.to_string()))
        };
        match req.method.as_str() {
            HoverRequest::METHOD => {
                let p: lsp_types::HoverParams = serde_json::from_value(req.params).map_err(bad)?;
                let result = self.at(&p.text_document_position_params, features::hover);
                json(serde_json::to_value(result))
            }
            GotoDefinition::METHOD => {
                let p: lsp_types::GotoDefinitionParams = serde_json::from_value(req.params).map_err(bad)?;
                let result = self
                    .at(&p.text_document_position_params, features::definition)
                    .map(GotoDefinitionResponse::Scalar);
                json(serde_json::to_value(result))
            }
            DocumentSymbolRequest::METHOD => {
                let p: lsp_types::DocumentSymbolParams = serde_json::from_value(req.params).map_err(bad)?;
                let result = self
                    .document(&p.text_document.uri)
                    .map(|d| DocumentSymbolResponse::Nested(features::symbols(d)));
                json(serde_json::to_value(result))
            }
            Formatting::METHOD => {
                let p: lsp_types::DocumentFormattingParams =
                    serde_json::from_value(req.params).map_err(bad)?;
                let result = self.document(&p.text_document.uri).map(features::formatting);
                json(serde_json::to_value(result))
            }
            Completion::METHOD => {
                let p: lsp_types::CompletionParams = serde_json::from_value(req.params).map_err(bad)?;
                let uri = &p.text_document_position.text_document.uri;
                let result = self.document(uri).map(|d| CompletionResponse::Array(features::completion(d)));
                json(serde_json::to_value(result))
            }
            other => Err((ErrorCode::MethodNotFound, format!("genc lsp does not handle `{other}`"))),
        }
    }

    /// Runs `f` on the document and byte offset of a position.
    fn at<T>(&mut self, p: &TextDocumentPositionParams, f: fn(&Document, usize) -> Option<T>) -> Option<T> {
        let doc = self.document(&p.text_document.uri)?;
        let offset = doc.lines.offset(&doc.text, p.position);
        f(doc, offset)
    }
}
