// Summarises results of the http-cache-tests suite (https://cache-tests.fyi): for each results
// file, the required tests that failed, the optimal ones that failed, and how many passed.
//
//   node summarize.mjs PACKAGE_DIR NAME=RESULTS.json [NAME=RESULTS.json …]
//
// A test's verdict follows the suite's own rules (lib/display.mjs, determineTestResult): a
// test whose dependency did not pass is a dependency failure, not a failure of its own; a
// setup failure is the harness's. That module imports browser code, so the rules are
// restated here, in a few lines, rather than imported.
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [pkg, ...runs] = process.argv.slice(2)
const load = async (rel) => (await import(pathToFileURL(path.join(pkg, rel)).href)).default
const suites = await load('tests/index.mjs')
suites.push(await load('tests/surrogate-control.mjs'))
const tests = new Map()
for (const suite of suites) {
  for (const test of suite.tests) {
    if (test.browser_only !== true) tests.set(test.id, test)
  }
}

function verdict (id, results) {
  const test = tests.get(id)
  const result = results[id]
  if (result === undefined) return 'untested'
  for (const dep of test.depends_on || []) {
    if (!['pass', 'yes'].includes(verdict(dep, results))) return 'dependency'
  }
  if (result[0] === 'Setup') return 'setup'
  const kind = test.kind || 'required'
  if (kind === 'check') return result === true ? 'yes' : 'no'
  if (result === true) return 'pass'
  return kind === 'required' ? 'fail' : 'optional_fail'
}

const out = {}
for (const run of runs) {
  const [name, file] = run.split('=')
  const results = JSON.parse(fs.readFileSync(file, 'utf8'))
  const by = { pass: [], fail: [], optional_fail: [], dependency: [], setup: [], untested: [], yes: [], no: [] }
  for (const id of tests.keys()) by[verdict(id, results)].push(id)
  out[name] = {
    required_failures: by.fail.sort(),
    optimal_failures: by.optional_fail.length,
    dependency_failures: by.dependency.length,
    setup_failures: by.setup.length,
    passed: by.pass.length,
    tests: tests.size
  }
}
console.log(JSON.stringify(out, null, 2))
