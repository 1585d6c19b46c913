//! `contracts/openapi.yaml`: the canonical REST API. The parts the harness relies on (which route binds which
//! abstract operation, which rules it carries) are typed; schemas, parameters and responses stay JSON values, since
//! the harness only looks into them and typing all of OpenAPI would buy nothing.

use std::collections::BTreeMap;

use conform_reference::ops::{OperationKind, UnknownOperation};
use serde::Deserialize;
use serde_json::Value;

/// The OpenAPI document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenApi {
    /// The OpenAPI version (3.1.x).
    pub openapi: String,
    /// The `info` object.
    pub info: Value,
    /// The `servers` list.
    pub servers: Vec<Value>,
    /// The global security requirement, which every operation inherits unless it overrides it with `[]`.
    pub security: Vec<Value>,
    /// The `tags` list.
    pub tags: Vec<Value>,
    /// Where the Socket.IO operations are bound, since OpenAPI cannot describe them.
    #[serde(rename = "x-socketio")]
    pub x_socketio: SocketIoBinding,
    /// The routes, by path template.
    pub paths: BTreeMap<String, PathItem>,
    /// The shared definitions `$ref`s point into.
    pub components: Components,
}

/// `x-socketio`: points at the realtime contract for the operations that are events, not routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketIoBinding {
    /// The contract file that describes them (`contracts/realtime.toml`).
    pub contract: String,
    /// The Engine.IO path, which must agree with that contract.
    pub path: String,
    /// The operations bound to events.
    pub operations: Vec<SocketIoOperation>,
}

/// An abstract operation bound to a Socket.IO event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketIoOperation {
    /// The operation's name.
    pub operation: String,
    /// The event that carries it.
    pub event: String,
    /// `x-rules`: the rules it carries.
    #[serde(rename = "x-rules")]
    pub rules: Vec<String>,
    /// `x-threats`: the threats it guards against.
    #[serde(rename = "x-threats")]
    pub threats: Vec<String>,
}

/// The operations of one path. Only the methods the canonical API uses are accepted, so any other key is an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathItem {
    /// `GET`.
    pub get: Option<ApiOperation>,
    /// `PUT`.
    pub put: Option<ApiOperation>,
    /// `POST`.
    pub post: Option<ApiOperation>,
    /// `PATCH`.
    pub patch: Option<ApiOperation>,
    /// `DELETE`.
    pub delete: Option<ApiOperation>,
}

impl PathItem {
    /// The operations this path defines, with their lower-case method, in a fixed order.
    pub fn operations(&self) -> impl Iterator<Item = (&'static str, &ApiOperation)> {
        [("get", &self.get), ("put", &self.put), ("post", &self.post), ("patch", &self.patch), ("delete", &self.delete)]
            .into_iter()
            .filter_map(|(method, op)| op.as_ref().map(|op| (method, op)))
    }
}

/// One route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiOperation {
    /// `operationId`: unique; the abstract operation's name unless `x-operation` says otherwise.
    #[serde(rename = "operationId")]
    pub operation_id: String,
    /// `x-operation`: the abstract operation, when several routes bind one (e.g. one webhook route per provider).
    #[serde(rename = "x-operation")]
    pub x_operation: Option<String>,
    /// `x-test-only`: a route for the harness's setup, which binds no abstract operation and is never tested.
    #[serde(rename = "x-test-only", default)]
    pub test_only: bool,
    /// `x-raw-body`: the body must be read as raw bytes, because a signature is verified over them (WH-1).
    #[serde(rename = "x-raw-body", default)]
    pub raw_body: bool,
    /// `tags`.
    pub tags: Vec<String>,
    /// `summary`.
    pub summary: String,
    /// `description`.
    pub description: Option<String>,
    /// `security`: `Some([])` for public operations; `None` inherits the global bearer authentication.
    pub security: Option<Vec<Value>>,
    /// `x-rules`: the rules the route carries.
    #[serde(rename = "x-rules")]
    pub rules: Vec<String>,
    /// `x-threats`: the threats it guards against.
    #[serde(rename = "x-threats")]
    pub threats: Vec<String>,
    /// `parameters`.
    pub parameters: Option<Vec<Value>>,
    /// `requestBody`.
    #[serde(rename = "requestBody")]
    pub request_body: Option<Value>,
    /// `responses`, by status (or `default`).
    pub responses: BTreeMap<String, Value>,
}

impl ApiOperation {
    /// The name of the abstract operation this route binds: `x-operation` if set, else `operationId`.
    pub fn operation_name(&self) -> &str {
        self.x_operation.as_deref().unwrap_or(&self.operation_id)
    }

    /// The abstract operation this route binds; an error for test-only routes and unknown names.
    pub fn operation(&self) -> Result<OperationKind, UnknownOperation> {
        OperationKind::parse(self.operation_name())
    }
}

/// `components`: what `$ref`s point into.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Components {
    /// `securitySchemes`.
    #[serde(rename = "securitySchemes")]
    pub security_schemes: BTreeMap<String, Value>,
    /// `parameters`.
    pub parameters: BTreeMap<String, Value>,
    /// `responses`.
    pub responses: BTreeMap<String, Value>,
    /// `schemas`.
    pub schemas: BTreeMap<String, Value>,
}

super::contract_file!(OpenApi, "openapi.yaml", parse_yaml, include_str!("../../contracts/openapi.yaml"));

impl OpenApi {
    /// Every route as (lower-case method, path template, operation), by path then method.
    pub fn routes(&self) -> impl Iterator<Item = (&'static str, &str, &ApiOperation)> {
        self.paths
            .iter()
            .flat_map(|(path, item)| item.operations().map(move |(method, op)| (method, path.as_str(), op)))
    }

    /// The routes that bind one abstract operation (several for webhooks, one per provider; none for events).
    pub fn routes_for(&self, op: OperationKind) -> impl Iterator<Item = (&'static str, &str, &ApiOperation)> {
        self.routes().filter(move |(_, _, route)| !route.test_only && route.operation_name() == op.name())
    }
}
