// The `orders` workflow's handler (docs/handlers.md): plain node:http, no dependencies.
// It receives each com.example.order.created event as a structured CloudEvent, rejects an
// invalid order with 422 (the consumer dead-letters that event with this answer as the reason)
// and accepts a valid one by answering with one com.example.order.accepted event, which the
// consumer publishes to the router (no id: the consumer derives one, the same on every retry).
"use strict";
const http = require("node:http");

const PORT = Number(process.env.PORT || 8080);

// What is wrong with an order (an empty list: nothing).
function problems(order) {
  if (typeof order !== "object" || order === null || Array.isArray(order)) {
    return ["data must be an object"];
  }
  const found = [];
  if (typeof order.orderId !== "string" || order.orderId === "") found.push("orderId is required");
  if (typeof order.customer !== "string" || order.customer === "") found.push("customer is required");
  if (!Array.isArray(order.items) || order.items.length === 0) {
    found.push("items must be a non-empty list");
  } else {
    order.items.forEach((item, i) => {
      if (typeof item?.sku !== "string" || item.sku === "") found.push(`items[${i}].sku is required`);
      if (!Number.isInteger(item?.quantity) || item.quantity < 1) {
        found.push(`items[${i}].quantity must be a whole number >= 1`);
      }
    });
  }
  return found;
}

function answer(res, status, type, body) {
  const data = Buffer.from(body ?? ""); // 204 and friends have no body
  const headers = { "Content-Length": data.length };
  if (type) headers["Content-Type"] = type;
  res.writeHead(status, headers);
  res.end(data);
}

function handle(event, res) {
  if (event.type !== "com.example.order.created") return answer(res, 204); // not ours: done
  const found = problems(event.data);
  if (found.length) return answer(res, 422, "text/plain", `invalid order: ${found.join("; ")}`);
  const order = event.data;
  const accepted = {
    specversion: "1.0",
    type: "com.example.order.accepted",
    subject: order.orderId,
    datacontenttype: "application/json",
    data: {
      orderId: order.orderId,
      customer: order.customer,
      items: order.items,
      units: order.items.reduce((sum, item) => sum + item.quantity, 0),
    },
  };
  answer(res, 200, "application/cloudevents+json", JSON.stringify(accepted));
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST") return answer(res, 405, "text/plain", "POST a CloudEvent");
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    let event;
    try {
      event = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch (err) {
      return answer(res, 400, "text/plain", `not JSON: ${err.message}`);
    }
    try {
      handle(event, res);
    } catch (err) {
      answer(res, 500, "text/plain", String(err)); // a bug here: the consumer retries
    }
  });
});
// Node 22 closes a connection idle for 5 s (server.keepAliveTimeout's default,
// https://nodejs.org/docs/latest-v22.x/api/http.html#serverkeepalivetimeout). The consumer's
// pool keeps idle connections with no time limit and finds one closed only when it next takes
// it: a call sent just as Node closes the socket fails ("unreachable") and is retried. That race
// needs a pause between two calls of about the timeout; at 65 s, longer than a receive wait
// (20 s at most), it is rare while events flow.
server.keepAliveTimeout = 65_000;
server.listen(PORT, () => console.log(`orders handler listening on ${PORT}`));
// Kubernetes stops the sidecar after the consumer: finish what is in flight, then exit.
process.on("SIGTERM", () => server.close(() => process.exit(0)));
