//! The API's OpenAPI 3.1 document, generated from the handlers' annotations (utoipa) and
//! kept in the repository as `docs/openapi.json`; a test fails when the two differ
//! (`ROSTER_UPDATE_OPENAPI=1 cargo test -p roster-fetcher openapi` rewrites the file).

use axum::Json;
use serde_json::{Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::imports;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Roster import API",
        description = "Upload employee directory files to Roster and follow their imports. \
            Every request carries `Authorization: Bearer <token>` (`roster tokens create`); \
            a token sees only its tenant's imports, a sandbox token only its dry runs.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        imports::create,
        imports::status,
        imports::rejects,
        imports::changes,
        imports::review,
        imports::approve,
        imports::reject
    ),
    components(schemas(
        ErrorBody,
        imports::Accepted,
        imports::ImportStatus,
        imports::Counts,
        imports::ImportError,
        imports::Status,
        imports::TypeDoc,
        imports::ModeDoc,
        imports::ReviewDoc,
        imports::ReviewChangeDoc,
        imports::FieldChangeDoc,
    )),
    modifiers(&Bearer),
    tags((name = "imports", description = "Uploading files and following their imports"))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document: the generated one, with links from an upload to its status and from a
/// status to its rejects and changes (so a client, or a tester, can follow an import from
/// the id it is given; added here because utoipa 5 writes a link's `operationId` under
/// the wrong name).
pub fn value() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    let link = |operation: &str, description: &str| {
        json!({
            "operationId": operation,
            "parameters": {"id": "$response.body#/id"},
            "description": description,
        })
    };
    doc["paths"]["/v1/imports"]["post"]["responses"]["202"]["links"] =
        json!({"status": link("status", "The import's status")});
    doc["paths"]["/v1/imports/{id}"]["get"]["responses"]["200"]["links"] = json!({
        "rejects": link("rejects", "The import's rejected rows"),
        "changes": link("changes", "A dry run's planned changes"),
    });
    doc
}

/// The document as kept in `docs/openapi.json`.
pub fn document() -> String {
    let mut json = serde_json::to_string_pretty(&value()).expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_json_in_the_repository_is_the_generated_document() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let generated = document();
        if std::env::var_os("ROSTER_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("writing docs/openapi.json");
        }
        let kept = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            kept == generated,
            "docs/openapi.json differs from the API's generated document: run \
             `ROSTER_UPDATE_OPENAPI=1 cargo test -p roster-fetcher openapi` and commit it"
        );
        let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );
        for path in [
            "/v1/imports",
            "/v1/imports/{id}",
            "/v1/imports/{id}/rejects",
            "/v1/imports/{id}/changes",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is documented");
        }
    }
}
