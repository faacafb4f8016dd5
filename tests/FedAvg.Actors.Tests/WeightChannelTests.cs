using System.IO.Hashing;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Akka.Event;
using Akka.TestKit.Xunit2;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Transfer;
using Xunit;

namespace FedAvg.Actors.Tests;

/// <summary>
/// The weight channel over real loopback sockets: what it moves arrives bit for bit, what it refuses is refused with
/// a logged reason, and hostile bytes leave it serving.
/// </summary>
public sealed class WeightChannelTests : TestKit
{
    static float[] Vector(int n, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
    }

    // 6.65 MB, a mcmahan-cnn vector: more than any socket buffer, so it moves in many reads
    readonly float[] weights = Vector(1_663_370, 1);
    readonly WeightChannelServer server;
    readonly WeightChannelClient client = new(null);

    public WeightChannelTests() : base("akka.loglevel = INFO")
    {
        server = WeightChannelServer.Start("127.0.0.1", 0, null, Logging.GetLogger(Sys, "weight-channel"));
        server.AcceptUploadsOf(weights.Length);
    }

    WeightHeader HeaderOf(float[] w, string client = "", int samples = 0) => WeightStream.Header(0xabc, 3, client, samples, w);

    [Fact]
    public async Task A_fetched_vector_is_the_offered_one_bit_for_bit_and_one_connection_serves_every_round()
    {
        var offer = server.Offer(weights, HeaderOf(weights));
        var first = await client.Fetch(offer, "127.0.0.1");
        Assert.Equal(MemoryMarshal.AsBytes(weights.AsSpan()).ToArray(), MemoryMarshal.AsBytes(first.AsSpan()).ToArray());
        var next = Vector(weights.Length, 2);
        var second = await client.Fetch(server.Offer(next, HeaderOf(next)), "127.0.0.1", n => first.Length == n ? first : new float[n]);
        Assert.Same(first, second); // landed in the caller's array
        Assert.Equal(next, second);
        Assert.Equal(1, server.Connections);
    }

    ChanneledWeights Payload(WeightChannelServer channel, float[] w, (Guid Ticket, bool Pushed) offer) => new(HeaderOf(w), channel.Port, offer.Ticket, offer.Pushed);

    [Fact]
    public async Task After_a_first_fetch_the_node_subscribes_and_what_is_offered_to_it_next_is_pushed_bit_for_bit_without_a_request()
    {
        var first = server.Offer(weights, "node-a");
        Assert.False(first.Pushed); // not subscribed yet
        Assert.Equal(weights, await client.Fetch(Payload(server, weights, first), "127.0.0.1"));
        await AwaitAssertAsync(() => Assert.True(server.IsSubscribed("node-a")));

        var next = Vector(weights.Length, 2);
        var offer = server.Offer(next, "node-a");
        Assert.True(offer.Pushed);
        Assert.False(server.Offer(next, "node-b").Pushed); // another node's offer: that node is not subscribed
        long fetches = server.Served.Fetches;
        var received = await client.Fetch(Payload(server, next, offer), "127.0.0.1");
        Assert.Equal(MemoryMarshal.AsBytes(next.AsSpan()).ToArray(), MemoryMarshal.AsBytes(received.AsSpan()).ToArray());
        Assert.Equal(fetches, server.Served.Fetches); // no request: it came on the subscription
        Assert.Equal(1, client.PushesReceived);
        // a round's second message to the node (a batch of more clients) gets the same array, not a second transfer
        Assert.Same(received, await client.Fetch(Payload(server, next, offer), "127.0.0.1"));
        Assert.Equal(fetches, server.Served.Fetches);
    }

    [Fact]
    public async Task A_pushed_vector_that_does_not_match_its_header_is_fetched_again_and_refused_as_damaged()
    {
        var warnings = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var node = new WeightChannelClient(null, warnings.Enqueue);
        await node.Fetch(Payload(server, weights, server.Offer(weights, "node-a")), "127.0.0.1");
        await AwaitAssertAsync(() => Assert.True(server.IsSubscribed("node-a")));
        var offer = server.Offer(weights, "node-a");
        Assert.True(offer.Pushed);
        var lying = new ChanneledWeights(HeaderOf(weights) with { Checksum = HeaderOf(weights).Checksum ^ 1 }, server.Port, offer.Ticket, Pushed: true);
        long fetches = server.Served.Fetches;
        var e = await Assert.ThrowsAsync<WeightTransferException>(() => node.Fetch(lying, "127.0.0.1"));
        Assert.Contains("checksum mismatch", e.Message);
        Assert.Equal(fetches + 1, server.Served.Fetches); // fetched again before it was refused
        Assert.Contains(warnings, w => w.Contains("do not match their header (checksum mismatch); fetching them"));
    }

    [Fact]
    public async Task A_node_whose_server_restarted_fetches_and_subscribes_again()
    {
        var restartable = WeightChannelServer.Start("127.0.0.1", 0, null, Logging.GetLogger(Sys, "weight-channel"));
        int port = restartable.Port;
        await client.Fetch(Payload(restartable, weights, restartable.Offer(weights, "node-a")), "127.0.0.1");
        await AwaitAssertAsync(() => Assert.True(restartable.IsSubscribed("node-a")));
        Assert.True(client.IsSubscribed("127.0.0.1", port));
        restartable.Dispose();
        await AwaitAssertAsync(() => Assert.False(client.IsSubscribed("127.0.0.1", port)), TimeSpan.FromSeconds(10));

        using var restarted = WeightChannelServer.Start("127.0.0.1", port, null, Logging.GetLogger(Sys, "weight-channel"));
        var offer = restarted.Offer(weights, "node-a");
        Assert.False(offer.Pushed); // the old subscription died with the old server
        Assert.Equal(weights, await client.Fetch(Payload(restarted, weights, offer), "127.0.0.1"));
        await AwaitAssertAsync(() => Assert.True(restarted.IsSubscribed("node-a")));
        var next = Vector(weights.Length, 4);
        var pushed = restarted.Offer(next, "node-a");
        Assert.True(pushed.Pushed);
        Assert.Equal(next, await client.Fetch(Payload(restarted, next, pushed), "127.0.0.1"));
    }

    /// <summary>A bare socket that sends a subscribe request, in the wire format of WeightChannel's remarks: "FAW" 1, subscribe (3), the ticket.</summary>
    static async Task<Socket> Subscribing(int port, Guid ticket, int? receiveBuffer = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        if (receiveBuffer is { } size) socket.ReceiveBufferSize = size;
        await socket.ConnectAsync(IPAddress.Loopback, port);
        await socket.SendAsync("FAW\u0001\u0003"u8.ToArray().Concat(ticket.ToByteArray()).ToArray());
        return socket;
    }

    [Fact]
    public async Task A_subscription_needs_a_ticket_offered_to_a_node_and_a_stranger_gets_nothing_pushed()
    {
        server.Offer(weights, "node-a"); // offered, and its ticket never leaves the server in this test
        var common = server.Offer(weights, HeaderOf(weights)); // an offer to no node in particular
        foreach (var ticket in new[] { Guid.NewGuid(), common.Ticket })
        {
            using var socket = await Subscribing(server.Port, ticket);
            var answer = new byte[2 + 200];
            int got = await socket.ReceiveAsync(answer);
            Assert.Equal(1, answer[0]); // unknown
            Assert.Contains("no weights offered to a node", System.Text.Encoding.UTF8.GetString(answer, 2, got - 2));
        }
        Assert.False(server.IsSubscribed("node-a"));
        Assert.False(server.Offer(weights, "node-a").Pushed);
    }

    [Fact]
    public async Task A_subscriber_that_takes_no_bytes_fails_its_push_after_the_stall_limit_and_is_pushed_to_no_more()
    {
        using var strict = WeightChannelServer.Start("127.0.0.1", 0, null, Logging.GetLogger(Sys, "weight-channel"), stalled: TimeSpan.FromSeconds(1));
        var big = new float[10_000_000]; // 40 MB: more than loopback's socket buffers hold
        var first = strict.Offer(big, "node-a");
        // a machine that vanished: subscribed, then it reads nothing (a small receive buffer, so the push blocks soon)
        using var socket = await Subscribing(strict.Port, first.Ticket, receiveBuffer: 64 * 1024);
        var status = new byte[1];
        Assert.Equal(1, await socket.ReceiveAsync(status));
        Assert.Equal(0, status[0]); // ok: subscribed
        await AwaitAssertAsync(() => Assert.True(strict.IsSubscribed("node-a")));
        await EventFilter.Warning(contains: "a push to node-a").ExpectAsync(1, async () => // "… it took none of the vector's bytes for 1 s"
        {
            Assert.True(strict.Offer(big, "node-a").Pushed);
            await AwaitAssertAsync(() => Assert.False(strict.IsSubscribed("node-a")), TimeSpan.FromSeconds(20));
        }, TimeSpan.FromSeconds(20));
        Assert.False(strict.Offer(big, "node-a").Pushed);
    }

    [Fact]
    public async Task A_connection_the_server_closed_while_pooled_is_replaced_not_failed_on()
    {
        var offer = server.Offer(weights, HeaderOf(weights));
        Assert.Equal(weights, await client.Fetch(offer, "127.0.0.1"));
        // a restarted server: same port, new listener, the pooled connection is dead
        int port = server.Port;
        server.Dispose();
        await AwaitAssertAsync(() => Assert.Equal(0, server.Connections));
        using var restarted = WeightChannelServer.Start("127.0.0.1", port, null, Logging.GetLogger(Sys, "weight-channel"));
        var again = restarted.Offer(weights, HeaderOf(weights));
        Assert.Equal(weights, await client.Fetch(again, "127.0.0.1"));
    }

    [Fact]
    public async Task An_idle_connection_is_closed_quietly_by_the_server_and_the_node_opens_a_new_one_when_it_needs_it()
    {
        using var brief = WeightChannelServer.Start("127.0.0.1", 0, null, Logging.GetLogger(Sys, "weight-channel"), idleLimit: TimeSpan.FromMilliseconds(300));
        Assert.Equal(weights, await client.Fetch(brief.Offer(weights, HeaderOf(weights)), "127.0.0.1"));
        await EventFilter.Warning().ExpectAsync(0, async () =>
        {
            await AwaitAssertAsync(() => Assert.Equal(0, brief.Connections), TimeSpan.FromSeconds(10));
            Assert.Equal(weights, await client.Fetch(brief.Offer(weights, HeaderOf(weights)), "127.0.0.1"));
        });
    }

    [Fact]
    public async Task Many_uploads_at_once_share_a_few_connections_and_all_arrive()
    {
        // as a node whose many small clients finish together: bounded by MaxTransfers, not one connection each
        var vectors = Enumerable.Range(0, 4 * WeightChannelClient.MaxTransfers).Select(i => Vector(1000, 10 + i)).ToList();
        server.AcceptUploadsOf(1000);
        var payloads = await Task.WhenAll(vectors.Select(v => client.Upload(v, HeaderOf(v), "127.0.0.1", server.Port)));
        Assert.InRange(server.Connections, 1, WeightChannelClient.MaxTransfers);
        for (int i = 0; i < vectors.Count; i++) Assert.Equal(vectors[i], server.Claim(payloads[i]));
    }

    [Fact]
    public async Task A_withdrawn_offer_is_refused_with_the_reason_and_the_connection_stays_usable()
    {
        var offer = server.Offer(weights, HeaderOf(weights));
        server.Withdraw(offer.Ticket);
        var e = await Assert.ThrowsAsync<WeightTransferException>(() => client.Fetch(offer, "127.0.0.1"));
        Assert.Contains("not offered any more", e.Message);
        Assert.Equal(weights, await client.Fetch(server.Offer(weights, HeaderOf(weights)), "127.0.0.1"));
        Assert.Equal(1, server.Connections);
    }

    [Fact]
    public async Task Weights_that_do_not_match_their_header_checksum_are_refused_as_damaged()
    {
        var header = HeaderOf(weights) with { Checksum = HeaderOf(weights).Checksum ^ 1 };
        var e = await Assert.ThrowsAsync<WeightTransferException>(() => client.Fetch(server.Offer(weights, header), "127.0.0.1"));
        Assert.Contains("checksum mismatch", e.Message);
    }

    [Fact]
    public async Task An_upload_is_claimed_once_intact_and_a_header_that_does_not_match_it_is_refused()
    {
        var update = Vector(weights.Length, 3);
        var header = HeaderOf(update, "client-3", 45);
        var payload = await client.Upload(update, header, "127.0.0.1", server.Port);
        var claimed = server.Claim(payload);
        Assert.NotSame(update, claimed);
        Assert.Equal(update, claimed);
        Assert.Contains("no upload under its ticket", Assert.Throws<WeightTransferException>(() => server.Claim(payload)).Message);

        var other = await client.Upload(update, header, "127.0.0.1", server.Port);
        var lie = other with { Header = header with { Checksum = header.Checksum + 1 } };
        Assert.Contains("checksum differs", Assert.Throws<WeightTransferException>(() => server.Claim(lie)).Message);
    }

    [Fact]
    public async Task An_upload_with_a_wrong_checksum_is_refused_and_logged_and_one_of_another_length_reaches_the_server_to_be_judged()
    {
        // the server refuses a wrong length by name ("malformed"), as every other lie: the channel only bounds it
        var shorter = Vector(weights.Length - 1, 4);
        var stored = await client.Upload(shorter, HeaderOf(shorter), "127.0.0.1", server.Port);
        Assert.Equal(shorter, server.Claim(stored));
        var update = Vector(weights.Length, 5);
        await EventFilter.Warning(contains: "checksum mismatch").ExpectOneAsync(async () =>
        {
            var e = await Assert.ThrowsAsync<WeightTransferException>(() =>
                client.Upload(update, HeaderOf(update) with { Checksum = 42 }, "127.0.0.1", server.Port));
            Assert.Contains("damaged in transit", e.Message);
        });
    }

    [Fact]
    public async Task Random_bytes_and_a_silent_peer_are_cut_off_with_a_logged_reason_and_the_channel_keeps_serving()
    {
        var junk = new byte[4096];
        new Random(7).NextBytes(junk);
        // the server closes the connection after each: the read ends (no status byte for bytes that are not a request)
        await EventFilter.Warning(contains: "that are not a request").ExpectOneAsync(async () =>
            Assert.Empty(await SendRaw(server.Port, junk)));
        // a valid magic with an unknown operation
        await EventFilter.Warning(contains: "unknown operation 9").ExpectOneAsync(async () =>
            Assert.Empty(await SendRaw(server.Port, RawRequest(9))));
        // an upload announcing a vector of 2^31−1 floats is refused (status 2) before anything is allocated
        await EventFilter.Warning(contains: "an upload of 2147483647 weights").ExpectOneAsync(async () =>
            Assert.Equal(2, (await SendRaw(server.Port, RawRequest(2, uploadLength: int.MaxValue)))[0]));
        // a peer that connects and says nothing is cut off once the first request is overdue
        using var patient = WeightChannelServer.Start("127.0.0.1", 0, null, Logging.GetLogger(Sys, "weight-channel"), firstRequest: TimeSpan.FromMilliseconds(300));
        await EventFilter.Warning(contains: "it sent no request in time").ExpectOneAsync(async () =>
        {
            using var socket = new TcpClient();
            await socket.ConnectAsync(IPAddress.Loopback, patient.Port);
            Assert.Equal(0, await socket.GetStream().ReadAsync(new byte[16]));
        });
        Assert.Equal(weights, await client.Fetch(server.Offer(weights, HeaderOf(weights)), "127.0.0.1"));
    }

    [Fact]
    public async Task One_address_holding_its_share_of_silent_connections_is_refused_more_and_logged_once_while_others_are_served()
    {
        // 127.0.0.2 is this machine too (all of 127/8 is loopback on Linux), but another address to the server
        var stranger = IPAddress.Parse("127.0.0.2");
        using var patient = WeightChannelServer.Start("127.0.0.1", 0, null, Logging.GetLogger(Sys, "weight-channel"), firstRequest: TimeSpan.FromMinutes(2));
        var silent = new List<TcpClient>();
        try
        {
            for (int i = 0; i < WeightChannelServer.MaxUnansweredPerAddress; i++)
            {
                var socket = new TcpClient(new IPEndPoint(stranger, 0));
                silent.Add(socket);
                await socket.ConnectAsync(IPAddress.Loopback, patient.Port);
            }
            await AwaitAssertAsync(() => Assert.Equal(WeightChannelServer.MaxUnansweredPerAddress, patient.UnansweredFrom(stranger)));

            // one more from that address is closed at once (it is not held for the 2 minutes) and named in the log
            await EventFilter.Warning(contains: "refused 1 connection(s) from 127.0.0.2").ExpectOneAsync(async () =>
                Assert.True(await ClosedAtOnce(patient.Port, stranger)));
            // the next refusal inside the report interval is summed, not logged again
            await EventFilter.Warning(contains: "refused").ExpectAsync(0, async () =>
                Assert.True(await ClosedAtOnce(patient.Port, stranger)));

            // another address is served meanwhile
            Assert.Equal(weights, await client.Fetch(patient.Offer(weights, HeaderOf(weights)), "127.0.0.1"));

            // once the silent ones are gone, the summed refusal is reported and the address connects again
            await EventFilter.Warning(contains: "refused 1 connection(s) from 127.0.0.2").ExpectOneAsync(async () =>
            {
                foreach (var socket in silent) socket.Dispose();
                await AwaitAssertAsync(() => Assert.Equal(0, patient.UnansweredFrom(stranger)), TimeSpan.FromSeconds(10));
            });
            // its request is served again: one for weights that are not offered gets its status (1, unknown), not a closed socket
            using var again = new TcpClient(new IPEndPoint(stranger, 0));
            await again.ConnectAsync(IPAddress.Loopback, patient.Port);
            await again.GetStream().WriteAsync(RawRequest(1));
            var status = new byte[1];
            await again.GetStream().ReadExactlyAsync(status);
            Assert.Equal(1, status[0]);
        }
        finally
        {
            foreach (var socket in silent) socket.Dispose();
        }
    }

    [Fact]
    public async Task A_peer_that_fails_again_and_again_before_its_first_request_is_logged_once_then_summed_per_address()
    {
        var stranger = IPAddress.Parse("127.0.0.2"); // loopback too, but another address to the server
        using var noisy = WeightChannelServer.Start("127.0.0.1", 0, null, Logging.GetLogger(Sys, "weight-channel"), warnEvery: TimeSpan.FromSeconds(2));
        var junk = "GET / HTTP/1.1\r\nHost: fedavg\r\n\r\n"u8.ToArray();
        // ten in a row from one address: the first is logged, the other nine only counted (each is still closed at once)
        await EventFilter.Warning(contains: "not a request").ExpectAsync(1, async () =>
        {
            for (int i = 0; i < 10; i++)
                Assert.Empty(await SendRaw(noisy.Port, junk, stranger));
        });
        // another address is counted on its own: its first is logged meanwhile
        await EventFilter.Warning(contains: "not a request").ExpectOneAsync(async () => Assert.Empty(await SendRaw(noisy.Port, junk)));
        // once the interval is over, the nine are reported in one line with the last of them, and nothing else
        await EventFilter.Warning(contains: "9 more like it from 127.0.0.2 in the last").ExpectOneAsync(TimeSpan.FromSeconds(10), () => Task.CompletedTask);
        // and a federation node is served throughout
        Assert.Equal(weights, await client.Fetch(noisy.Offer(weights, HeaderOf(weights)), "127.0.0.1"));
    }

    /// <summary>A channel request as the protocol lays it out: magic, operation, a zero ticket, and for an upload its length and checksum.</summary>
    static byte[] RawRequest(byte operation, int? uploadLength = null)
    {
        var request = new byte[uploadLength is null ? 21 : 33];
        "FAW\u0001"u8.CopyTo(request);
        request[4] = operation;
        if (uploadLength is { } n) BitConverter.TryWriteBytes(request.AsSpan(21), n);
        return request;
    }

    /// <summary>Whether a connection from <paramref name="from"/> is closed by the server without a word (within 10 s; it sends nothing).</summary>
    static async Task<bool> ClosedAtOnce(int port, IPAddress from)
    {
        using var socket = new TcpClient(new IPEndPoint(from, 0));
        await socket.ConnectAsync(IPAddress.Loopback, port);
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            return await socket.GetStream().ReadAsync(new byte[1], limit.Token) == 0;
        }
        catch (IOException) // reset: closed as well
        {
            return true;
        }
    }

    /// <summary>Sends <paramref name="bytes"/> on a new plaintext connection (from <paramref name="from"/>, or 127.0.0.1) and returns all the server answers until it closes it.</summary>
    static async Task<byte[]> SendRaw(int port, byte[] bytes, IPAddress? from = null)
    {
        using var socket = from is null ? new TcpClient() : new TcpClient(new IPEndPoint(from, 0));
        await socket.ConnectAsync(IPAddress.Loopback, port);
        await socket.GetStream().WriteAsync(bytes);
        var answer = new MemoryStream();
        await socket.GetStream().CopyToAsync(answer);
        return answer.ToArray();
    }

    [Fact]
    public async Task With_TLS_only_the_federations_certificates_connect_and_a_plaintext_or_foreign_peer_is_refused_and_logged()
    {
        var dir = Directory.CreateTempSubdirectory("fedavg-channel-tls-");
        try
        {
            var ours = Security(dir.FullName, "ours");
            var theirs = Security(dir.FullName, "theirs");
            using var secure = WeightChannelServer.Start("127.0.0.1", 0, ours, Logging.GetLogger(Sys, "weight-channel"));
            var offer = secure.Offer(weights, HeaderOf(weights));
            using (var member = new WeightChannelClient(ours))
                Assert.Equal(weights, await member.Fetch(offer, "127.0.0.1"));

            // a refused certificate costs two lines, the validator's and the failed handshake's; both are awaited here, or
            // under load the second arrived in the plaintext step below and was counted there
            await EventFilter.Warning(contains: "TLS handshake failed").ExpectOneAsync(() =>
                EventFilter.Warning(contains: "is not signed by the federation's CA").ExpectAsync(1, async () =>
                {
                    using var stranger = new WeightChannelClient(theirs);
                    var e = await Assert.ThrowsAsync<WeightTransferException>(() => stranger.Fetch(offer, "127.0.0.1"));
                    Assert.Contains("weight channel", e.Message);
                }));
            await EventFilter.Warning(contains: "TLS handshake failed").ExpectOneAsync(async () =>
            {
                using var plain = new WeightChannelClient(null);
                await Assert.ThrowsAsync<WeightTransferException>(() => plain.Fetch(offer, "127.0.0.1"));
            });
            using (var member = new WeightChannelClient(ours))
                Assert.Equal(weights, await member.Fetch(offer, "127.0.0.1"));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_node_revoked_while_connected_fetches_nothing_more_the_refusal_names_its_certificate_and_the_server_learns_which_node()
    {
        var dir = Directory.CreateTempSubdirectory("fedavg-channel-revoked-");
        try
        {
            string ca = Path.Combine(dir.FullName, "ca");
            FederationCertificates.Init(ca, "ours", null, 2).Dispose();
            var now = DateTimeOffset.UtcNow;
            string Issue(string name) => FederationCertificates.Issue(name, ca, Path.Combine(dir.FullName, name), FederationCertificates.RoleClient,
                null, null, [], now.AddMinutes(-5), now.AddDays(1));
            TransportSecurity Of(string pfx) => new(TransportSecurity.LoadNodeCertificate(pfx, null, "none"),
                TransportSecurity.LoadCaCertificate(Path.Combine(ca, FederationCertificates.CaCertificateFile), "--tls-ca"));
            string serverPfx = Issue("server"), memberPfx = Issue("member");
            using var serverTls = Of(serverPfx);
            string list = Path.Combine(dir.FullName, "server", FederationCertificates.RevokedFile); // beside its ca.crt
            serverTls.ReadRevoked(list);
            using var memberTls = Of(memberPfx);
            using var secure = WeightChannelServer.Start("127.0.0.1", 0, serverTls, Logging.GetLogger(Sys, "weight-channel"));
            var told = new System.Collections.Concurrent.ConcurrentQueue<(string Node, string Reason)>();
            secure.ReportRevokedNodes((node, reason) => told.Enqueue((node, reason)));
            var offer = Payload(secure, weights, secure.Offer(weights, "member"));
            using var member = new WeightChannelClient(memberTls);
            Assert.Equal(weights, await member.Fetch(offer, "127.0.0.1")); // authenticated, the connection pooled, and subscribed
            await AwaitAssertAsync(() => Assert.True(secure.IsSubscribed("member")));

            FederationCertificates.Revoke(Path.ChangeExtension(memberPfx, ".crt"), ca);
            File.Copy(Path.Combine(ca, FederationCertificates.RevokedFile), list);
            // nothing more is pushed to it: its subscription ends at the next offer, by name
            await EventFilter.Warning(contains: "ended the subscription of member").ExpectAsync(1, () =>
            {
                Assert.False(secure.Offer(weights, "member").Pushed);
                return Task.CompletedTask;
            });
            // and the server is told which node it was, to remove it from the federation
            Assert.True(told.TryDequeue(out var atPush));
            Assert.Equal("member", atPush.Node);
            Assert.Contains("CN=member", atPush.Reason);
            await EventFilter.Warning(contains: "is revoked").ExpectAsync(1, async () =>
            {
                var e = await Assert.ThrowsAsync<WeightTransferException>(() => member.Fetch(offer, "127.0.0.1"));
                Assert.Contains("CN=member", e.Message);
                Assert.Contains("is revoked", e.Message);
            });
            // a request under a ticket offered to that node names it too (before the fetch above was refused)
            Assert.True(told.TryDequeue(out var atFetch));
            Assert.Equal(("member", atPush.Reason), atFetch);
            // and a new connection is refused at its handshake
            await EventFilter.Warning(contains: "is revoked").ExpectAsync(1, async () =>
            {
                using var again = new WeightChannelClient(memberTls);
                await Assert.ThrowsAsync<WeightTransferException>(() => again.Fetch(offer, "127.0.0.1"));
            });
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    static TransportSecurity Security(string root, string federation)
    {
        string ca = Path.Combine(root, federation, "ca");
        FederationCertificates.Init(ca, federation, null, 2).Dispose();
        var now = DateTimeOffset.UtcNow;
        string pfx = FederationCertificates.Issue("node", ca, Path.Combine(root, federation, "node"), FederationCertificates.RoleClient, null, null, [],
            now.AddMinutes(-5), now.AddDays(1));
        return new TransportSecurity(TransportSecurity.LoadNodeCertificate(pfx, null, "none"),
            TransportSecurity.LoadCaCertificate(Path.Combine(ca, FederationCertificates.CaCertificateFile), "--tls-ca"));
    }

    [Fact]
    public void A_taken_port_is_a_usage_error_that_names_the_option()
    {
        var e = Assert.Throws<FedAvg.Core.UsageException>(() => WeightChannelServer.Start("127.0.0.1", server.Port, null, Logging.GetLogger(Sys, "x")));
        Assert.Contains($"--data-port {server.Port}", e.Message);
        Assert.Contains("already in use", e.Message);
    }

    protected override void Dispose(bool disposing)
    {
        client.Dispose();
        server.Dispose();
        base.Dispose(disposing);
    }
}
