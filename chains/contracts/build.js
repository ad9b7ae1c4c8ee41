// Compiles the devnet contracts with the pinned solc npm package and writes
// build/<Name>.json ({contractName, compiler, abi, bytecode}). Run: npm run build-contracts
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const CONTRACTS = ['DevToken', 'Forwarder', 'Payout'];
const here = __dirname;
const outDir = path.join(here, 'build');

function compile() {
  const sources = {};
  for (const name of CONTRACTS) {
    const file = `${name}.sol`;
    sources[file] = { content: fs.readFileSync(path.join(here, file), 'utf8') };
  }
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      // Pinned so the artifact does not depend on the compiler's default hardfork.
      evmVersion: 'cancun',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) console.error(e.formattedMessage);
  if (errors.length) process.exit(1);
  return output;
}

function main() {
  const output = compile();
  fs.mkdirSync(outDir, { recursive: true });
  for (const name of CONTRACTS) {
    const contract = output.contracts[`${name}.sol`][name];
    const artifact = {
      contractName: name,
      compiler: `solc ${solc.version()}`,
      abi: contract.abi,
      bytecode: '0x' + contract.evm.bytecode.object,
    };
    const target = path.join(outDir, `${name}.json`);
    fs.writeFileSync(target, JSON.stringify(artifact, null, 2) + '\n');
    console.log(`wrote ${path.relative(process.cwd(), target)}`);
  }
}

main();
