// BIND through a SOCKS5 proxy with the npm "socks" package, for
// tests/integration/test_bind.py.
//
//   node bind.js PROXY_HOST PROXY_PORT DST_HOST DST_PORT
//
// Prints one JSON object per line on stdout: {"event":"bound",...} with the
// address the proxy listens on (the first reply), then
// {"event":"established",...} with the peer's address (the second reply).
// After that it echoes whatever the peer sends, ends its side when the peer
// does, and exits 0 once the connection is closed. Any error prints
// {"event":"error",...} and exits 1; nothing may take longer than 20 s.
'use strict';

const { SocksClient } = require('socks');

const [proxyHost, proxyPort, dstHost, dstPort] = process.argv.slice(2);

function report(event, fields) {
	process.stdout.write(JSON.stringify(Object.assign({ event }, fields)) + '\n');
}

const deadline = setTimeout(() => {
	report('error', { message: 'timed out' });
	process.exit(2);
}, 20000);

const client = new SocksClient({
	proxy: { host: proxyHost, port: Number(proxyPort), type: 5 },
	command: 'bind',
	destination: { host: dstHost, port: Number(dstPort) },
	timeout: 15000,
});

client.on('bound', (info) => {
	report('bound', { host: info.remoteHost.host, port: info.remoteHost.port });
});

client.on('established', (info) => {
	const socket = info.socket;

	report('established', { host: info.remoteHost.host, port: info.remoteHost.port });
	socket.on('data', (data) => socket.write(data));
	socket.on('end', () => socket.end());
	socket.on('error', (err) => {
		report('error', { message: String(err) });
		process.exit(1);
	});
	socket.on('close', () => {
		clearTimeout(deadline);
		process.exit(0);
	});
});

client.on('error', (err) => {
	report('error', { message: String(err) });
	process.exit(1);
});

client.connect();
