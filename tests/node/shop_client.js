// Call every method of the shop fixture's Catalog with @grpc/grpc-js, through
// the proxy, and print one JSON line per call (see grpc_client.js for its keys).
//
//   node tests/node/shop_client.js 127.0.0.1:15052
//
// The .proto is the fixture's own (fixtures/grpc_fakes/shop), loaded at run
// time by proto-loader: a user's client with no codegen step, against a fake
// built from the same file. The requests are the ones the fixture's GripMock
// stubs match, then one that the stubbed error answers and one that no stub
// matches; tests/testbed/grpc_js/test_grpc_js_shop.py checks every answer.

"use strict";

const path = require("node:path");
const { runPlan, fail } = require("./grpc_client.js");

const SHOP = path.resolve(__dirname, "..", "..", "fixtures", "grpc_fakes", "shop");

const PLAN = {
  protos: [path.join(SHOP, "protos", "shop", "v1", "shop.proto")],
  include_dirs: [path.join(SHOP, "protos")],
  service: "shop.v1.Catalog",
  calls: [
    { method: "GetItem", requests: [{ id: "book-1" }] },
    {
      method: "ListItems",
      requests: [{ category: "CATEGORY_BOOK" }],
      metadata: { "x-caller": "grpc-js" },
    },
    {
      method: "RecordPrices",
      requests: [
        { id: "book-1", micros: "100" },
        { id: "book-2", micros: "250" },
      ],
    },
    { method: "Chat", requests: [{ text: "hello" }, { text: "bye" }] },
    { method: "GetItem", requests: [{ id: "gone" }] },
    { method: "GetItem", requests: [{ id: "no-such-item" }] },
  ],
};

const target = process.argv[2];
if (!target) fail("usage: node shop_client.js TARGET (host:port of the proxy's shop listener)");
runPlan(target, PLAN, SHOP).catch((err) => fail(err.stack || String(err)));
