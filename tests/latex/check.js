// Renders each LaTeX string read from stdin (a JSON array) with KaTeX in strict mode.
// Prints one line per string: "ok" or "error: <KaTeX's message>". Used by the tests only.
const katex = require("katex");

let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  for (const formula of JSON.parse(input)) {
    try {
      katex.renderToString(formula, { displayMode: true, throwOnError: true, strict: "error" });
      console.log("ok");
    } catch (error) {
      console.log("error: " + String(error.message).replace(/\n/g, " "));
    }
  }
});
