// Boot: configuration, the Express app (REST under /api/v1), Socket.IO on the same port, and the deadline tick.

import express, { NextFunction, Request, Response } from "express";
import { createServer } from "node:http";
import { loadConfig } from "./config";
import { Refusal } from "./errors";
import { adminRouter } from "./http/admin";
import { authRouter } from "./http/auth";
import { dealsRouter } from "./http/deals";
import { Ctx, sendError, sendJobs } from "./http/handler";
import { testingRouter } from "./http/testing";
import { webhooksRouter } from "./http/webhooks";
import { Passkeys } from "./passkeys";
import { Providers } from "./providers";
import { attachRealtime } from "./realtime";
import { Backend } from "./state";

function main(): void {
  const cfg = loadConfig();
  const backend = new Backend(cfg);
  let boundPort = cfg.port;
  const providers = new Providers(cfg, () => cfg.publicUrl ?? `http://127.0.0.1:${boundPort}`);
  const ctx: Ctx = { backend, providers };
  const passkeys = new Passkeys(cfg);

  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("query parser", "simple");

  let lastActivity = Date.now();
  app.use((_req, _res, next) => {
    lastActivity = Date.now();
    next();
  });

  if (cfg.accessLog) {
    app.use((req, res, next) => {
      const started = Date.now();
      res.on("finish", () => console.error(`express-target: ${req.method} ${req.originalUrl} -> ${res.statusCode} (${Date.now() - started} ms)`));
      next();
    });
  }

  // Every body is read as raw bytes (webhooks are verified on exactly these bytes); routes parse JSON themselves.
  app.use(express.raw({ type: () => true, limit: cfg.bodyLimitBytes }));

  const api = express.Router();
  api.get("/health", (_req, res) => {
    res.status(200).json({ status: "ok" });
  });
  api.use(testingRouter(ctx));
  api.use(authRouter(ctx, passkeys));
  api.use(dealsRouter(ctx));
  api.use(adminRouter(ctx));
  api.use(webhooksRouter(ctx));
  app.use("/api/v1", api);

  app.use((_req: Request, res: Response) => sendError(res, new Refusal("not_found")));
  // Body parser and routing errors: too large, bad encoding, aborted; never a crash.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof Refusal) return sendError(res, err);
    const status = typeof err === "object" && err !== null && "status" in err ? Number((err as { status: unknown }).status) : 500;
    if (status === 413) return sendError(res, new Refusal("payload_too_large"));
    if (status >= 400 && status < 500) return sendError(res, new Refusal("validation_failed", "the request body cannot be read"));
    return sendError(res, err);
  });

  const server = createServer(app);
  server.requestTimeout = 30_000;
  server.headersTimeout = 20_000;
  attachRealtime(server, backend, cfg.bodyLimitBytes);

  // ESC-9 and ESC-12 fire on time even without requests; their payouts go out from here.
  const tick = setInterval(() => {
    try {
      backend.fireDeadlines();
      const jobs = backend.takeJobs();
      if (jobs.length > 0) void sendJobs(ctx, jobs);
    } catch (e) {
      console.error("express-target: deadline tick failed:", e);
    }
    if (cfg.idleExitSeconds > 0 && Date.now() - lastActivity > cfg.idleExitSeconds * 1000) {
      console.log(`express-target: no request for ${cfg.idleExitSeconds} s, exiting (IDLE_EXIT_SECONDS)`);
      process.exit(0);
    }
  }, 1000);
  tick.unref();

  server.listen(cfg.port, cfg.host, () => {
    const addr = server.address();
    if (addr && typeof addr === "object") boundPort = addr.port;
    console.log(`express-target: listening on http://${cfg.host}:${boundPort}/api/v1 (test mode ${cfg.testMode ? "on" : "off"}, passkeys ${cfg.passkeysEnabled ? "on" : "off"})`);
  });

  const stop = (): void => {
    clearInterval(tick);
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("uncaughtException", (e) => console.error("express-target: uncaught exception:", e));
  process.on("unhandledRejection", (e) => console.error("express-target: unhandled rejection:", e));
}

main();
