// Runs a wasm32-wasip1 command module under Node's WASI (V8, the engine Envoy uses).
// usage: node --no-warnings bench/wasi-run.mjs MODULE.wasm [args...]
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";

const [file, ...args] = process.argv.slice(2);
if (!file) {
  console.error("usage: wasi-run.mjs MODULE.wasm [args...]");
  process.exit(2);
}
const wasi = new WASI({ version: "preview1", args: [file, ...args], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const imports = wasi.getImportObject();
// The crate's proxy-wasm shell is linked in on wasm32 and imports the proxy ABI from
// `env`; a command that never enters the shell gets stubs that fail loudly if called.
imports.env = {};
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === "env" && imp.kind === "function") {
    imports.env[imp.name] = () => {
      throw new Error(`proxy ABI ${imp.name} called outside Envoy`);
    };
  }
}
const instance = await WebAssembly.instantiate(module, imports);
// The shell also exports `_initialize` (a reactor entry point), which WASI.start refuses
// beside `_start`: hand it the command's exports only.
const { memory, _start } = instance.exports;
process.exitCode = wasi.start({ exports: { memory, _start } });
