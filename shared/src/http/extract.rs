//! Body extractors whose every failure is a problem+json 4xx: wrong content type → 415, body over
//! the limit → 413, malformed JSON → 400, well-formed JSON of the wrong shape → 422 naming the field.

use axum::{
    body::Bytes,
    extract::{rejection::FormRejection, FromRequest, Request},
    http::header,
};
use serde::de::DeserializeOwned;

use crate::{error::Error, state::AppState};

/// A JSON body. Unknown fields are ignored (never applied), as serde does by default.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Error::UnsupportedMediaType(
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let limit = state.config().http.max_json_body_bytes;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| body_error(r.status(), limit))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserializes JSON, reporting where in the document a shape error is.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = strip_position(&inner.to_string());
                // serde reports a missing field at its parent; name the field itself.
                let field = match message
                    .strip_prefix("missing field `")
                    .and_then(|m| m.split('`').next())
                {
                    Some(name) if path == "." => name.to_string(),
                    Some(name) => format!("{path}.{name}"),
                    None if path == "." => "body".to_string(),
                    None => path,
                };
                Error::invalid(field, message)
            }
            _ => Error::BadRequest(format!(
                "the body is not valid JSON: {}",
                strip_position(&inner.to_string())
            )),
        }
    })
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn body_error(status: axum::http::StatusCode, limit: usize) -> Error {
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        Error::PayloadTooLarge { limit }
    } else {
        Error::BadRequest("the request body could not be read".into())
    }
}

/// An `application/x-www-form-urlencoded` body (the OAuth2 password flow).
pub struct ApiForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiForm<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(ApiForm(value)),
            Err(FormRejection::InvalidFormContentType(_)) => Err(Error::UnsupportedMediaType(
                "the body must be a form (Content-Type: application/x-www-form-urlencoded)",
            )),
            Err(FormRejection::FailedToDeserializeForm(e)) => {
                Err(Error::invalid("body", e.body_text()))
            }
            Err(FormRejection::FailedToDeserializeFormBody(e)) => {
                Err(Error::invalid("body", e.body_text()))
            }
            Err(other) => Err(body_error(
                other.status(),
                state.config().http.max_json_body_bytes,
            )),
        }
    }
}

/// Query parameters, every value a string; a bad one is a 422 naming its parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Error> {
        parse_query(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}

/// Deserializes a query string through a JSON object of strings, so a shape error names the
/// parameter as a body error names its field. A repeated parameter is ambiguous, so it is refused.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, Error> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| Error::invalid("query", e.to_string()))?;
    let mut object = serde_json::Map::new();
    for (k, v) in pairs {
        if object.contains_key(&k) {
            return Err(Error::invalid(k, "is given more than once"));
        }
        object.insert(k, serde_json::Value::String(v));
    }
    serde_path_to_error::deserialize(serde_json::Value::Object(object)).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => "query".to_string(),
            p => p,
        };
        Error::invalid(field, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        nested: Option<Nested>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        n: u32,
    }

    fn field_of(r: Result<Body, Error>) -> String {
        match r.unwrap_err() {
            Error::Validation(e) => e[0].field.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(parse_json(br#"{}"#)), "email");
        assert_eq!(field_of(parse_json(br#"{"email": 5}"#)), "email");
        assert_eq!(
            field_of(parse_json(br#"{"email":"a","nested":{"n":"x"}}"#)),
            "nested.n"
        );
        assert_eq!(
            field_of(parse_json(br#"{"email":"a","nested":{}}"#)),
            "nested.n"
        );
        assert_eq!(field_of(parse_json(br#""just a string""#)), "body");
        assert!(matches!(
            parse_json::<Body>(br#"{"email":"#),
            Err(Error::BadRequest(_))
        ));
        assert!(parse_json::<Body>(br#"{"email":"a","role":"admin"}"#).is_ok());
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Format {
        Json,
        Markdown,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Query {
        format: Option<Format>,
        q: Option<String>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let q: Query = parse_query("format=markdown&q=a%20b").unwrap();
        assert_eq!(
            (q.format, q.q.as_deref()),
            (Some(Format::Markdown), Some("a b"))
        );
        match parse_query::<Query>("q=a&q=b").unwrap_err() {
            Error::Validation(e) => assert_eq!(e[0].field, "q"),
            other => panic!("{other:?}"),
        }
        let q: Query = parse_query("").unwrap();
        assert!(q.format.is_none() && q.q.is_none());
        match parse_query::<Query>("format=pdf").unwrap_err() {
            Error::Validation(e) => assert_eq!(e[0].field, "format"),
            other => panic!("{other:?}"),
        }
    }
}
