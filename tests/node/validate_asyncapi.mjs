// Validate an AsyncAPI document read from stdin with the official parser.
// Prints the parser's diagnostics as a JSON array on stdout; exits 1 if any has
// severity 0 (error), 2 if the input is not JSON, else 0.
import { Parser } from '@asyncapi/parser';

let text = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) text += chunk;

let doc;
try {
  doc = JSON.parse(text);
} catch (err) {
  console.log(JSON.stringify([{ code: 'invalid-json', message: String(err), severity: 0, path: [] }]));
  process.exit(2);
}

const diagnostics = await new Parser().validate(doc);
console.log(JSON.stringify(diagnostics.map((d) => ({
  code: d.code, message: d.message, severity: d.severity, path: d.path,
}))));
process.exit(diagnostics.some((d) => d.severity === 0) ? 1 : 0);
