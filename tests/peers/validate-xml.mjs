// Validates an XML file against an XML Schema with libxml2 (xmllint compiled to WebAssembly), so that the tests
// need Node.js but no system xmllint. Usage: node validate-xml.mjs SCHEMA.xsd FILE.xml
// Exit status: 0 valid; 1 invalid (each error printed to stderr as FILE:LINE: message); 2 bad usage.

import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { validateXML } from "xmllint-wasm";

const [schemaPath, xmlPath] = process.argv.slice(2);
if (!schemaPath || !xmlPath) {
  console.error("usage: node validate-xml.mjs SCHEMA.xsd FILE.xml");
  process.exit(2);
}

const [schema, xml] = await Promise.all([readFile(schemaPath, "utf8"), readFile(xmlPath, "utf8")]);
const result = await validateXML({
  xml: { fileName: basename(xmlPath), contents: xml },
  schema: { fileName: basename(schemaPath), contents: schema },
});

if (result.valid) {
  console.log(`${xmlPath}: valid against ${schemaPath}`);
  process.exit(0);
}
for (const error of result.errors) {
  console.error(error.loc ? `${error.loc.fileName}:${error.loc.lineNumber}: ${error.message}` : error.rawMessage);
}
process.exit(1);
