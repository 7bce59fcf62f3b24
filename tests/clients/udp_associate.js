// UDP ASSOCIATE through a SOCKS5 proxy with the npm "socks" package, for
// tests/integration/test_udp_clients.py.
//
//   node udp_associate.js PROXY_HOST PROXY_PORT DST_HOST DST_PORT COUNT
//
// Opens an association (DST 0.0.0.0:0: "not known yet"), sends COUNT
// datagrams "datagram N" to DST through the relay the proxy named, and
// waits for as many answers. Prints one JSON line on stdout:
// {"event":"done","relay":{host,port},"replies":[{from,host,port,data},...]}
// (from: where the datagram came from; host, port: its SOCKS header),
// closes the control connection and exits 0. Any error prints
// {"event":"error",...} and exits 1; nothing may take longer than 15 s.
'use strict';

const dgram = require('dgram');
const net = require('net');
const { SocksClient } = require('socks');

const [proxyHost, proxyPort, dstHost, dstPort, countArg] = process.argv.slice(2);
const count = Number(countArg);

function report(event, fields) {
	process.stdout.write(JSON.stringify(Object.assign({ event }, fields)) + '\n');
}

function fail(err) {
	report('error', { message: String(err) });
	process.exit(1);
}

setTimeout(() => fail('timed out'), 15000).unref();

// createConnection() only does CONNECT; an association needs the client
// object and its 'established' event.
const client = new SocksClient({
	proxy: { host: proxyHost, port: Number(proxyPort), type: 5 },
	command: 'associate',
	destination: { host: '0.0.0.0', port: 0 },
	timeout: 10000,
});

client.on('error', fail);
client.on('established', (info) => {
	const relay = info.remoteHost;
	const control = info.socket;
	const udp = dgram.createSocket(net.isIPv6(relay.host) ? 'udp6' : 'udp4');
	const replies = [];

	control.on('error', fail);
	udp.on('error', fail);
	udp.on('message', (message, rinfo) => {
		const frame = SocksClient.parseUDPFrame(message);
		replies.push({
			from: { host: rinfo.address, port: rinfo.port },
			host: frame.remoteHost.host,
			port: frame.remoteHost.port,
			data: frame.data.toString(),
		});
		if (replies.length === count) {
			report('done', { relay, replies });
			udp.close();
			control.end();
			control.on('close', () => process.exit(0));
		}
	});
	udp.bind(0, net.isIPv6(relay.host) ? '::1' : '127.0.0.1', () => {
		for (let i = 0; i < count; i++) {
			const frame = SocksClient.createUDPFrame({
				remoteHost: { host: dstHost, port: Number(dstPort) },
				data: Buffer.from(`datagram ${i}`),
			});
			udp.send(frame, relay.port, relay.host);
		}
	});
});

client.connect();
