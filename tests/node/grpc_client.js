// Make gRPC calls with @grpc/grpc-js from a .proto loaded at run time, and print
// what the client saw: one JSON line per call.
//
//   node grpc_client.js TARGET PLAN.json
//
// The test suite uses it to prove that a second gRPC stack (not grpcio, whose
// C-core shares HTTP/2 habits with the fakes) talks to the testbed's fakes
// through the proxy. The .proto is read by @grpc/proto-loader, so, like the
// testbed, the client has no codegen step.
//
// PLAN.json:
//   {"protos": ["shop.proto"], "include_dirs": ["protos"],
//    "service": "shop.v1.Catalog", "deadline_ms": 10000,
//    "calls": [{"method": "GetItem", "requests": [{"id": "1"}],
//               "metadata": {"x-user": "ann"}}]}
//
// The call kind (unary, server/client streaming, bidi) comes from the method's
// definition; a unary or server-streaming call sends requests[0]. Every call's
// line has: method, kind, messages (the responses, in order, as proto-loader
// objects with field names as in the .proto, 64-bit integers and enums as
// strings, bytes as base64), code, status (the code's name), details, headers
// and trailers (metadata as {key: [values]}, binary values in base64).
// Calls run one after the other, in the plan's order, so the fake's journal
// sees them in that order too. Exit status 0 once every call ended, whatever
// its gRPC status: judging statuses is the caller's job. Exit 2 on a bad plan.

"use strict";

const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: String,
  defaults: false,
  oneofs: true,
};

// Responses kept per call: a fake that streams without end must not exhaust memory.
const MAX_MESSAGES = 10000;

const STATUS_NAMES = Object.fromEntries(
  Object.entries(grpc.status).map(([name, code]) => [code, name]),
);

function fail(message) {
  process.stderr.write(`grpc_client.js: ${message}\n`);
  process.exit(2);
}

function metadataJson(metadata) {
  const out = {};
  if (!metadata) return out;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    out[key] = values.map((v) => (Buffer.isBuffer(v) ? v.toString("base64") : String(v)));
  }
  return out;
}

function makeMetadata(pairs) {
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(pairs || {})) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      md.add(key, key.endsWith("-bin") ? Buffer.from(String(v), "base64") : String(v));
    }
  }
  return md;
}

function loadService(plan, planDir) {
  const resolve = (p) => path.resolve(planDir, p);
  const protos = (plan.protos || []).map(resolve);
  if (protos.length === 0) fail("the plan names no protos");
  const includeDirs = (plan.include_dirs || []).map(resolve);
  const definition = protoLoader.loadSync(protos, { ...LOADER_OPTIONS, includeDirs });
  const service = definition[plan.service];
  if (!service || typeof service !== "object" || service.format) {
    const known = Object.keys(definition).filter((k) => !definition[k].format);
    fail(`service ${JSON.stringify(plan.service)} is not in the protos (found: ${known.join(", ")})`);
  }
  return service;
}

function kindOf(method) {
  if (method.requestStream && method.responseStream) return "bidi";
  if (method.requestStream) return "client_streaming";
  if (method.responseStream) return "server_streaming";
  return "unary";
}

// Start one call and resolve with its line once the status arrived.
function runCall(client, service, spec, deadlineMs) {
  const method = service[spec.method];
  if (!method) {
    fail(`method ${JSON.stringify(spec.method)} is not in the service (found: ${Object.keys(service).join(", ")})`);
  }
  const kind = kindOf(method);
  const requests = spec.requests || [{}];
  const metadata = makeMetadata(spec.metadata);
  const options = { deadline: Date.now() + (spec.deadline_ms || deadlineMs) };
  const fn = client[spec.method].bind(client);
  const result = {
    method: `${service[spec.method].path.slice(1)}`,
    kind,
    messages: [],
    code: null,
    status: null,
    details: "",
    headers: {},
    trailers: {},
  };
  const keep = (message) => {
    if (result.messages.length < MAX_MESSAGES) result.messages.push(message);
  };

  return new Promise((resolve) => {
    let call;
    const unaryCallback = (err, response) => {
      if (!err && response !== undefined) keep(response);
    };
    if (kind === "unary") {
      call = fn(requests[0], metadata, options, unaryCallback);
    } else if (kind === "server_streaming") {
      call = fn(requests[0], metadata, options);
    } else if (kind === "client_streaming") {
      call = fn(metadata, options, unaryCallback);
    } else {
      call = fn(metadata, options);
    }
    if (kind === "server_streaming" || kind === "bidi") {
      call.on("data", keep);
      // an error status also arrives as 'status'; without a listener 'error' would throw
      call.on("error", () => {});
    }
    call.on("metadata", (md) => {
      result.headers = metadataJson(md);
    });
    call.on("status", (status) => {
      result.code = status.code;
      result.status = STATUS_NAMES[status.code] || String(status.code);
      result.details = status.details || "";
      result.trailers = metadataJson(status.metadata);
      // the unary callback may fire after 'status' in some versions: settle on the next tick
      setImmediate(() => resolve(result));
    });
    if (kind === "client_streaming" || kind === "bidi") {
      for (const request of requests) call.write(request);
      call.end();
    }
  });
}

// Make every call of `plan` against `target`, one after the other, writing each
// call's line to stdout as it ends. Relative paths in the plan are taken from planDir.
async function runPlan(target, plan, planDir) {
  const service = loadService(plan, planDir);
  const Client = grpc.makeGenericClientConstructor(service, plan.service);
  const client = new Client(target, grpc.credentials.createInsecure());
  try {
    for (const spec of plan.calls || []) {
      const line = await runCall(client, service, spec, plan.deadline_ms || 10000);
      process.stdout.write(JSON.stringify(line) + "\n");
    }
  } finally {
    client.close();
  }
}

async function main() {
  const [target, planPath] = process.argv.slice(2);
  if (!target || !planPath) fail("usage: node grpc_client.js TARGET PLAN.json");
  let plan;
  try {
    plan = JSON.parse(fs.readFileSync(planPath, "utf8"));
  } catch (err) {
    fail(`${planPath}: ${err.message}`);
  }
  await runPlan(target, plan, path.dirname(path.resolve(planPath)));
}

module.exports = { runPlan, fail };

if (require.main === module) {
  main().catch((err) => fail(err.stack || String(err)));
}
