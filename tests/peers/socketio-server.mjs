// A real Socket.IO 4.8 server for conform's interop tests (tests/it/socketio.rs).
//
// Listens on 127.0.0.1, port 0; prints the port on stdout as its first line. Exits when stdin closes, so it
// never outlives the test that spawned it. Behaviour (mirrored by the socketioxide peer in the test):
// - auth middleware: CONNECT auth `{"token":"good"}` is accepted, anything else gets CONNECT_ERROR
//   "unauthorized". The query string is never looked at (SPEC RT-2).
// - `echo` (...args, ack?): acks the same arguments; without an ack, emits `echo` back with them.
// - `join` (room, ack?): joins the room, acks "joined".
// - `to-room` (room, payload, ack?): emits `room-message` (room, payload) to that room only, acks "sent".
// - `kick`: the server disconnects the socket (Socket.IO DISCONNECT).
// - `whoami` (ack): acks the namespace name; `handshake-query` (ack): acks the query string's `token` (or null),
//   to show that a token there reached the server without authenticating anyone.
// - namespaces `/` and `/admin` behave the same.
// - pingInterval 300 ms, pingTimeout 200 ms, so ping-timeout tests are fast; messages capped at 1 MB.
import { createServer } from "node:http";
import { Server } from "socket.io";

const httpServer = createServer();
const io = new Server(httpServer, {
  pingInterval: 300,
  pingTimeout: 200,
  maxHttpBufferSize: 1e6, // the default, stated: a bigger WebSocket message is closed with 1009
  transports: ["websocket", "polling"],
  serveClient: false,
});

function setup(nsp) {
  nsp.use((socket, next) => {
    const auth = socket.handshake.auth;
    if (auth && typeof auth === "object" && auth.token === "good") {
      next();
    } else {
      next(new Error("unauthorized"));
    }
  });
  nsp.on("connection", (socket) => {
    socket.on("echo", (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      if (ack) {
        ack(...args);
      } else {
        socket.emit("echo", ...args);
      }
    });
    socket.on("join", (room, ack) => {
      socket.join(String(room));
      if (typeof ack === "function") ack("joined");
    });
    socket.on("to-room", (room, payload, ack) => {
      nsp.to(String(room)).emit("room-message", room, payload);
      if (typeof ack === "function") ack("sent");
    });
    socket.on("whoami", (ack) => {
      if (typeof ack === "function") ack(nsp.name);
    });
    socket.on("handshake-query", (ack) => {
      if (typeof ack === "function") ack(socket.handshake.query.token ?? null);
    });
    socket.on("kick", () => {
      socket.disconnect();
    });
  });
}

setup(io.of("/"));
setup(io.of("/admin"));

httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${httpServer.address().port}\n`);
});

process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
