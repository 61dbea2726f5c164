//! Failure answers as kube-apiserver gives them: an HTTP code plus a `v1` Status object whose
//! `reason`, `message` and `details` clients (kube-rs' `ErrorResponse`, kubectl's
//! `Error from server (NotFound): ...`) read.
//!
//! In: what went wrong, from any layer (queries, objects, patches, the store). Out: [`ApiError`],
//! turned into a response or into a watch `ERROR` event's object.

use serde_json::{Value, json};

use super::object::ObjectError;
use super::patch::PatchError;
use super::query::QueryError;
use super::resource::Kind;
use super::store::StoreError;

/// A failed request: HTTP code, Status `reason`, `message` and optional `details`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code (also the Status `code`).
    pub code: u16,
    /// Status `reason` (`NotFound`, `Conflict`, `Expired`...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Status `details` (`name`, `kind`, `group`, `causes`), if any.
    pub details: Option<Value>,
}

/// The `group` and `kind` (plural) that Status details and messages name.
fn qualified(kind: Kind) -> String {
    let i = kind.info();
    if i.group.is_empty() {
        i.plural.to_string()
    } else {
        format!("{}.{}", i.plural, i.group)
    }
}

fn details(kind: Kind, name: &str) -> Value {
    let i = kind.info();
    let mut d = json!({"name": name, "kind": i.plural});
    if !i.group.is_empty() {
        d["group"] = json!(i.group);
    }
    d
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404 `services "web" not found`.
    pub fn not_found(kind: Kind, name: &str) -> ApiError {
        ApiError {
            details: Some(details(kind, name)),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", qualified(kind)),
            )
        }
    }

    /// 404 for a path that names nothing served.
    pub fn no_such_path() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 `services "web" already exists`.
    pub fn already_exists(kind: Kind, name: &str) -> ApiError {
        ApiError {
            details: Some(details(kind, name)),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(kind)),
            )
        }
    }

    /// 409 Conflict: the object changed since the client read it.
    pub fn conflict(kind: Kind, name: &str, why: &str) -> ApiError {
        ApiError {
            details: Some(details(kind, name)),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {why}",
                    qualified(kind)
                ),
            )
        }
    }

    /// The conflict of a stale `resourceVersion`.
    pub fn stale(kind: Kind, name: &str) -> ApiError {
        ApiError::conflict(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable(accept: &str) -> ApiError {
        ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io (asked: {accept})"
            ),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str, accepted: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}) - accepted media types include: {accepted}"
            ),
        )
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    /// 503 ServiceUnavailable (the double is shutting down).
    pub fn unavailable() -> ApiError {
        ApiError::new(503, "ServiceUnavailable", "the server is shutting down")
    }

    /// The Status object of this error.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

impl From<PatchError> for ApiError {
    fn from(e: PatchError) -> ApiError {
        match e {
            PatchError::Invalid(_) => ApiError::bad_request(e.to_string()),
            PatchError::Failed(_) => ApiError::new(422, "Invalid", e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Expired { .. } => ApiError::new(410, "Expired", e.to_string()),
            StoreError::TooLarge { .. } => ApiError {
                details: Some(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                ),
                ..ApiError::new(504, "Timeout", e.to_string())
            },
        }
    }
}

impl From<ObjectError> for ApiError {
    fn from(e: ObjectError) -> ApiError {
        match &e {
            ObjectError::Decode { .. } | ObjectError::BadRequest(_) => {
                ApiError::bad_request(e.to_string())
            }
            ObjectError::Invalid { kind, name, causes } => {
                let kind_plural = Kind::ALL
                    .into_iter()
                    .find(|k| k.info().kind == *kind)
                    .map(|k| k.info().plural)
                    .unwrap_or(kind);
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|(field, message)| json!({"reason": "FieldValueInvalid", "message": message, "field": field}))
                    .collect();
                ApiError {
                    details: Some(json!({"name": name, "kind": kind_plural, "causes": causes})),
                    ..ApiError::new(422, "Invalid", e.to_string())
                }
            }
            ObjectError::Exhausted { .. } => ApiError::internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

    #[test]
    fn statuses_decode_and_read_like_upstream() {
        let e = ApiError::not_found(Kind::EndpointSlice, "web-abc");
        assert_eq!(
            e.message,
            "endpointslices.discovery.k8s.io \"web-abc\" not found"
        );
        let s: Status = serde_json::from_value(e.status()).unwrap();
        assert_eq!((s.code, s.reason.as_deref()), (Some(404), Some("NotFound")));
        assert_eq!(
            s.details.unwrap().group.as_deref(),
            Some("discovery.k8s.io")
        );
        let gone: ApiError = StoreError::Expired {
            requested: 3,
            oldest: 9,
        }
        .into();
        assert_eq!((gone.code, gone.reason), (410, "Expired"));
        assert_eq!(gone.message, "too old resource version: 3 (9)");
        let stale = ApiError::stale(Kind::Service, "web");
        assert!(
            stale
                .message
                .starts_with("Operation cannot be fulfilled on services \"web\"")
        );
        let inv: ApiError = ObjectError::Invalid {
            kind: "Service",
            name: "Web".into(),
            causes: vec![("metadata.name".into(), "Invalid value".into())],
        }
        .into();
        let s: Status = serde_json::from_value(inv.status()).unwrap();
        assert_eq!(
            s.details.unwrap().causes.unwrap()[0].field.as_deref(),
            Some("metadata.name")
        );
    }
}
