using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using FedAvg.Actors.Client;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Transfer;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;
using Xunit;

namespace FedAvg.Actors.Tests;

/// <summary>
/// A node's <see cref="ClientHost"/> in its own actor system, over Akka.Remote on loopback, with a test probe as the
/// server and a real weight channel: what the host does with the round vectors it receives.
/// </summary>
public sealed class ClientHostTests : TestKit
{
    static readonly Config Remote = ConfigurationFactory.ParseString("akka.loglevel = INFO").WithFallback(OverTheWire.Config);

    // a length no other test uses, so WeightBuffers' pool of it holds this test's vectors alone
    const int Length = 12_347;
    const ulong Layout = 0x5eed;

    public ClientHostTests() : base(Remote) { }

    /// <summary>Records what each request's global weights were when its training began; a client named in
    /// <paramref name="stallIn"/> holds its round open until <paramref name="release"/>, then checks the vector again.</summary>
    sealed class Recording(string id, int? stallIn, Task release, ConcurrentQueue<(string Client, int Round, float[] Array, bool AsSent)> seen,
        ConcurrentQueue<bool> intactAfterStall) : ILocalTraining
    {
        public int SampleCount => 10;

        public async Task<TrainResult> Train(string clientId, LocalTrain request)
        {
            var global = request.GlobalWeights;
            seen.Enqueue((id, request.Round, global, global.All(v => v == request.Round)));
            if (request.Round == stallIn)
            {
                await release.ConfigureAwait(false);
                intactAfterStall.Enqueue(global.All(v => v == request.Round));
            }
            // one weight longer than the round vectors: the channel server in this process rents uploads from the same
            // WeightBuffers pool, by length, so the pool of Length holds the node's round vectors alone (the server judges
            // an update's length; this test's probe does not)
            return new TrainResult(new float[Length + 1], SampleCount, 0.5, 0.5, TimeSpan.Zero);
        }
    }

    [Fact]
    public async Task Round_vectors_from_the_channel_are_recycled_once_no_client_reads_them_and_never_while_one_still_does()
    {
        using var channel = WeightChannelServer.Start("127.0.0.1", 0, null, Logging.GetLogger(Sys, "weight-channel"));
        channel.AcceptUploadsOf(Length);
        var node = ActorSystem.Create("node", Remote);
        using var fetcher = new WeightChannelClient(null);
        try
        {
            var server = CreateTestProbe();
            var serverAddress = ((ExtendedActorSystem)Sys).Provider.DefaultAddress;
            var coordinator = await node.ActorSelection(server.Ref.Path.ToStringWithAddress(serverAddress)).ResolveOne(TimeSpan.FromSeconds(10));
            var seen = new ConcurrentQueue<(string Client, int Round, float[] Array, bool AsSent)>();
            var intact = new ConcurrentQueue<bool>();
            var unstall = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var clients = new List<(string, ILocalTraining)>
            {
                ("client-000", new Recording("client-000", 1, unstall.Task, seen, intact)), // stalls in round 1
                ("client-001", new Recording("client-001", null, unstall.Task, seen, intact)),
            };
            var host = node.ActorOf(ClientHost.Props("node-x", "fed", new ClientRange(0, 1), coordinator,
                _ => Task.FromResult(new PreparedClients(Layout, clients)), _ => { }, fetcher), "node");

            // the server reaches the host over Akka.Remote, as a server does (a local ref would skip the wire)
            var nodeAddress = ((ExtendedActorSystem)node).Provider.DefaultAddress;
            var hostRef = await Sys.ActorSelection(host.Path.ToStringWithAddress(nodeAddress)).ResolveOne(TimeSpan.FromSeconds(10));
            var session = server.ExpectMsg<JoinFederation>(TimeSpan.FromSeconds(30)).Session;
            server.Reply(new InSession(session, new Welcome(new RunSpec("fed", "mnist", "seed001-2nn", 2, "iid:10", 1, false, Layout))));
            InSessionOf<RegisterClients>(server, session);
            server.Reply(new InSession(session, new Registered("node-x", 2)));

            var config = RoundConfig.From(new TrainConfig(1, 10, 0.1));
            var sent = new List<float[]>();
            for (int round = 1; round <= 4; round++)
            {
                var weights = Enumerable.Repeat((float)round, Length).ToArray();
                sent.Add(weights);
                var (ticket, pushed) = channel.Offer(weights, "node-x");
                // round 1 trains both clients; client-000 stalls in it, so later rounds sample client-001 alone
                ClientTask[] tasks = round == 1 ? [new ClientTask("client-000", 1), new ClientTask("client-001", 2)] : [new ClientTask("client-001", 2)];
                server.Send(hostRef, new InSession(session, new TrainRound(round, 1, tasks, config,
                    new ChanneledWeights(WeightStream.Header(Layout, round, "", 0, weights), channel.Port, ticket, pushed))));
                var update = InSessionOf<UpdateSubmitted>(server, session);
                Assert.Equal((round, "client-001"), (update.Round, update.ClientId));
                if (round > 1) Assert.True(pushed, $"round {round} was not pushed: the node never subscribed"); // pushed from round 2 on
            }

            var byRound = seen.Where(s => s.Client == "client-001").OrderBy(s => s.Round).ToList();
            Assert.Equal([1, 2, 3, 4], byRound.Select(s => s.Round));
            Assert.All(seen, s => Assert.True(s.AsSent, $"{s.Client} saw round {s.Round}'s vector with other values than the server sent"));
            float[] stalledOn = seen.Single(s => s.Client == "client-000").Array;
            // the vector client-000 still reads is never handed out again; round 2's, free once round 3 began, carries round 4
            Assert.All(byRound.Skip(1), s => Assert.False(ReferenceEquals(stalledOn, s.Array), $"round {s.Round} reused the vector a client still reads"));
            Assert.Same(byRound[1].Array, byRound[3].Array);
            Assert.NotSame(byRound[2].Array, byRound[3].Array);

            // the stalled client finds its vector as it was (what becomes of its late update is the server's: ServerTests)
            unstall.SetResult();
            await AwaitAssertAsync(() => Assert.Equal([true], intact), TimeSpan.FromSeconds(10));
        }
        finally
        {
            await node.Terminate();
        }
    }

    /// <summary>
    /// Akka.Remote takes a message's sender from the message, so any member of the cluster can post to a node as the
    /// coordinator. Before sessions, a TrainRound from any of them made the node's clients train on its weights and send
    /// it their updates, and a RunFinished ended the node. Now only the node's session with the coordinator counts.
    /// </summary>
    [Fact]
    public void A_node_obeys_only_messages_in_its_session_and_another_members_train_round_or_end_of_run_changes_nothing()
    {
        var server = CreateTestProbe();
        var intruder = CreateTestProbe();
        var outcomes = new ConcurrentQueue<NodeOutcome>();
        var clients = new List<(string, ILocalTraining)> { ("client-000", new Instant()), ("client-001", new Instant()) };
        var host = Sys.ActorOf(ClientHost.Props("node-x", "fed", new ClientRange(0, 1), server.Ref,
            _ => Task.FromResult(new PreparedClients(Layout, clients)), outcomes.Enqueue), "obeying-node");
        var spec = new RunSpec("fed", "mnist", "seed001-2nn", 2, "iid:10", 1, false, Layout);
        var session = server.ExpectMsg<JoinFederation>(TimeSpan.FromSeconds(30)).Session;
        Assert.NotEqual(Guid.Empty, session);

        EventFilter.Warning(contains: "ignoring a Welcome").ExpectOne(() => intruder.Send(host, new Welcome(spec)));
        server.Send(host, new InSession(session, new Welcome(spec)));
        Assert.Equal(2, InSessionOf<RegisterClients>(server, session).Clients.Count);
        server.Reply(new InSession(session, new Registered("node-x", 2)));

        var config = RoundConfig.From(new TrainConfig(1, 10, 0.1));
        TrainRound Round(int r) => new(r, 1, [new ClientTask("client-000", 1), new ClientTask("client-001", 2)], config,
            WeightStream.Local(new float[4], Layout, r, "", 0));
        EventFilter.Warning(contains: $"ignoring a TrainRound from {intruder.Ref.Path}: it came outside this node's session").ExpectOne(() =>
            intruder.Send(host, Round(1)));
        EventFilter.Warning(contains: $"ignoring a TrainRound from {intruder.Ref.Path}: it came in another session").ExpectOne(() =>
            intruder.Send(host, new InSession(Guid.NewGuid(), Round(1))));
        EventFilter.Warning(contains: "ignoring a RunFinished").Expect(2, () =>
        {
            intruder.Send(host, new RunFinished(true, "over, says the intruder"));
            intruder.Send(host, new InSession(Guid.NewGuid(), new RunFinished(true, "over, says the intruder")));
        });

        // the coordinator's round trains both clients, whose updates come to it in the session; the intruder gets nothing
        server.Send(host, new InSession(session, Round(2)));
        var updates = new[] { InSessionOf<UpdateSubmitted>(server, session), InSessionOf<UpdateSubmitted>(server, session) };
        Assert.Equal(["client-000", "client-001"], updates.Select(u => u.ClientId).Order());
        Assert.All(updates, u => Assert.Equal(2, u.Round));
        intruder.ExpectNoMsg(TimeSpan.Zero);
        Assert.DoesNotContain(outcomes, o => o is NodeRunFinished);

        server.Send(host, new InSession(session, new RunFinished(true, "completed after round 2")));
        AwaitAssert(() => Assert.Contains(outcomes, o => o is NodeRunFinished { Reason: "completed after round 2" }), TimeSpan.FromSeconds(10));
    }

    /// <summary>
    /// Any member can send a node forged messages as fast as the wire carries them, and each used to cost a line of the
    /// node's log. Now the first of a kind from a sender is said at once and the rest are counted, and the count is
    /// said once the interval has passed or the node stops, so a flood neither fills the log nor goes unseen.
    /// </summary>
    [Fact]
    public void A_flood_of_forged_messages_costs_the_node_one_line_at_once_and_one_count_after_it()
    {
        var server = CreateTestProbe();
        var intruder = CreateTestProbe();
        var outcomes = new ConcurrentQueue<NodeOutcome>();
        var host = Sys.ActorOf(ClientHost.Props("node-y", "fed", new ClientRange(0, 1), server.Ref,
            _ => Task.FromResult(new PreparedClients(Layout, [])), outcomes.Enqueue), "flooded-node");
        server.ExpectMsg<JoinFederation>(TimeSpan.FromSeconds(30));

        var forged = new RunFinished(true, "over, says the intruder");
        EventFilter.Warning(contains: $"node node-y: ignoring a RunFinished from {intruder.Ref.Path}").ExpectOne(() =>
        {
            for (int i = 0; i < 1000; i++) intruder.Send(host, forged);
        });
        // PoisonPill, unlike Stop, comes after the flood in the mailbox: every forged message has been counted
        EventFilter.Warning(contains: $"node node-y: 999 more like it from {intruder.Ref.Path.Address}").ExpectOne(() =>
            host.Tell(PoisonPill.Instance));
        Assert.DoesNotContain(outcomes, o => o is NodeRunFinished);
    }

    /// <summary>
    /// A join held back because another live node has this node's id (JoinHeldBack) is said once and asked again; a node
    /// held back for longer than its limit (`fedavg node`: --join-timeout) gives up as refused, naming why, instead of
    /// waiting for good; one admitted within it goes on.
    /// </summary>
    [Fact]
    public void A_node_held_back_past_its_limit_gives_up_as_refused_and_one_admitted_in_time_goes_on()
    {
        const string reason = "node node-z at akka.tcp://fedavg@127.0.0.1:40123 is up and reachable";
        var spec = new RunSpec("fed", "mnist", "seed001-2nn", 2, "iid:10", 1, false, Layout);
        (TestProbe Server, IActorRef Host, Guid Session, ConcurrentQueue<NodeOutcome> Outcomes) Start(string name)
        {
            var server = CreateTestProbe();
            var outcomes = new ConcurrentQueue<NodeOutcome>();
            var host = Sys.ActorOf(ClientHost.Props("node-z", "fed", new ClientRange(0, 1), server.Ref,
                _ => Task.FromResult(new PreparedClients(Layout, [("client-000", new Instant())])), outcomes.Enqueue,
                heldBackLimit: TimeSpan.FromSeconds(3)), name);
            var session = server.ExpectMsg<JoinFederation>(TimeSpan.FromSeconds(30)).Session;
            server.Send(host, new InSession(session, new JoinHeldBack(reason)));
            Assert.Equal(session, server.ExpectMsg<JoinFederation>(TimeSpan.FromSeconds(10)).Session); // it asks again
            server.Send(host, new InSession(session, new JoinHeldBack(reason)));
            return (server, host, session, outcomes);
        }

        var held = Start("held-node");
        AwaitAssert(() => Assert.Contains(held.Outcomes, o => o is NodeRefused { Reason: $"the server held this node's join back for 3 s: {reason}" }),
            TimeSpan.FromSeconds(10));
        Assert.Single(held.Outcomes, o => o is NodeEvent e && e.Text.StartsWith($"the server holds this node's join back: {reason}"));

        var admitted = Start("admitted-node");
        admitted.Server.Send(admitted.Host, new InSession(admitted.Session, new Welcome(spec)));
        Assert.Single(InSessionOf<RegisterClients>(admitted.Server, admitted.Session).Clients);
        admitted.Server.Reply(new InSession(admitted.Session, new Registered("node-z", 1)));
        admitted.Server.ExpectNoMsg(TimeSpan.FromSeconds(3)); // past the limit: the timer was cancelled with the welcome
        Assert.DoesNotContain(admitted.Outcomes, o => o is NodeRefused);
    }

    /// <summary>
    /// With TLS a node takes part only after a welcome that proves a server certificate of the federation (Hosting/
    /// NodeIdentity), and trains only for the coordinator that sent it. Cluster roles are what each member says of itself,
    /// so a member holding a node's certificate could declare the `server` role and be handed the coordinator once the
    /// servers are gone; it would hear every node's join and session. Before, nodes then registered with it and sent it
    /// every update.
    /// </summary>
    [Fact]
    public void With_TLS_a_node_takes_part_only_after_a_welcome_that_proves_a_server_certificate_and_trains_only_for_that_coordinator()
    {
        using var certs = new TestCertificates();
        var node = new NodeIdentity(TestCertificates.Load(certs.Issue("node-t"), ClusterHosting.ClientRole));
        var server = new NodeIdentity(TestCertificates.Load(certs.Issue("server", FederationCertificates.RoleServer), ClusterHosting.ServerRole));
        var mallory = new NodeIdentity(TestCertificates.Load(certs.Issue("mallory"), ClusterHosting.ClientRole));
        var spec = new RunSpec("fed", "mnist", "seed001-2nn", 2, "iid:10", 1, false, Layout);
        var config = RoundConfig.From(new TrainConfig(1, 10, 0.1));
        TrainRound Round(int r) => new(r, 1, [new ClientTask("client-000", 1)], config, WeightStream.Local(new float[4], Layout, r, "", 0));
        (TestProbe Proxy, IActorRef Host, JoinFederation Join, ConcurrentQueue<NodeOutcome> Outcomes) Start(string name)
        {
            var proxy = CreateTestProbe(); // the singleton proxy: joins go there, whichever member holds the coordinator
            var outcomes = new ConcurrentQueue<NodeOutcome>();
            var host = Sys.ActorOf(ClientHost.Props("node-t", "fed", new ClientRange(0, 0), proxy.Ref,
                _ => Task.FromResult(new PreparedClients(Layout, [("client-000", new Instant())])), outcomes.Enqueue, identity: node), name);
            var join = proxy.ExpectMsg<JoinFederation>(TimeSpan.FromSeconds(30));
            // the node proves its certificate, signed for its address as other processes see it
            Assert.Null(server.JoinRejection(join, ((ExtendedActorSystem)Sys).Provider.DefaultAddress));
            return (proxy, host, join, outcomes);
        }
        Welcome SignedBy(NodeIdentity signer, JoinFederation join, TestProbe from) => new(spec, signer.ProveWelcome(join, from.Ref.Path.Address));

        // a coordinator with a node's certificate, and one with no proof: the node takes no part, and says why
        var rogue = CreateTestProbe();
        var refused = Start("refusing-node");
        rogue.Send(refused.Host, new InSession(refused.Join.Session, SignedBy(mallory, refused.Join, rogue)));
        AwaitAssert(() => Assert.Contains(refused.Outcomes, o => o is NodeRefused { Reason: var r } && r.StartsWith(
            $"the coordinator at {rogue.Ref.Path.Address} is not a server of federation 'fed': its welcome's certificate 'CN=mallory, OU=client") &&
            r.EndsWith("is issued for role 'client', not 'server'")), TimeSpan.FromSeconds(10));
        var unproven = Start("unproven-node");
        rogue.Send(unproven.Host, new InSession(unproven.Join.Session, new Welcome(spec)));
        AwaitAssert(() => Assert.Contains(unproven.Outcomes, o => o is NodeRefused { Reason: var r } && r.Contains("its welcome proves no server certificate")),
            TimeSpan.FromSeconds(10));
        Assert.All(new[] { refused.Proxy, unproven.Proxy }, p => p.ExpectNoMsg(TimeSpan.Zero)); // no registration went out

        // the server's welcome: the node registers and trains for it
        var legit = CreateTestProbe();
        var serving = Start("serving-node");
        var session = serving.Join.Session;
        legit.Send(serving.Host, new InSession(session, SignedBy(server, serving.Join, legit)));
        Assert.Single(InSessionOf<RegisterClients>(serving.Proxy, session).Clients);
        legit.Send(serving.Host, new InSession(session, new Registered("node-t", 1)));
        legit.Send(serving.Host, new InSession(session, Round(1)));
        Assert.Equal(1, InSessionOf<UpdateSubmitted>(legit, session).Round);

        // the coordinator's revocations are in force on the node at once and kept in its revoked.txt; the rogue's are not heard
        string serial = mallory.Tls.Certificate.GetSerialNumberString(), list = node.Tls.RevokedPath;
        EventFilter.Warning(contains: $"node node-t: ignoring 1 revoked certificate(s) from {rogue.Ref.Path}: not the coordinator whose welcome").ExpectOne(() =>
            rogue.Send(serving.Host, new InSession(session, new RevokedCertificates(["0BADC0DE"]))));
        legit.Send(serving.Host, new InSession(session, new RevokedCertificates([serial])));
        AwaitAssert(() => Assert.Contains(serving.Outcomes, o => o is NodeEvent { Text: var t } && t.StartsWith($"revoked 1 certificate(s) the server at {legit.Ref.Path.Address} revoked ({serial}); added to {list}")),
            TimeSpan.FromSeconds(10));
        Assert.Contains(serial, node.Tls.Revoked);
        Assert.Contains(serial, FederationCertificates.ReadRevoked(list));
        Assert.Single(node.Tls.Revoked); // the rogue's serial was not taken

        // the coordinator moves to the rogue, which heard the node's session in its join: its round is not trained, and
        // asked to register again, the node joins but sends its clients only after a proven welcome
        EventFilter.Warning(contains: $"node node-t: ignoring round 2 from {rogue.Ref.Path}: no welcome of that coordinator proved a server certificate " +
                                      $"(this node trains for {legit.Ref.Path})").ExpectOne(() =>
            rogue.Send(serving.Host, new InSession(session, Round(2))));
        EventFilter.Warning(contains: $"node node-t: ignoring the end of the run from {rogue.Ref.Path}: this node trains for {legit.Ref.Path}").ExpectOne(() =>
            rogue.Send(serving.Host, new InSession(session, new RunFinished(true, "over, says the rogue"))));
        Assert.DoesNotContain(serving.Outcomes, o => o is NodeRunFinished);
        rogue.Send(serving.Host, RegisterAgain.Instance);
        Assert.Equal(session, serving.Proxy.ExpectMsg<JoinFederation>(TimeSpan.FromSeconds(10)).Session);
        serving.Proxy.ExpectNoMsg(TimeSpan.Zero); // without the welcome rule its registration came with the join
        rogue.Send(serving.Host, new InSession(session, SignedBy(mallory, serving.Join, rogue)));
        AwaitAssert(() => Assert.Contains(serving.Outcomes, o => o is NodeRefused), TimeSpan.FromSeconds(10));
        serving.Proxy.ExpectNoMsg(TimeSpan.Zero);
        rogue.ExpectNoMsg(TimeSpan.Zero); // no update of round 2
    }

    /// <summary>The next message of <paramref name="probe"/>, which must be a <typeparamref name="T"/> in <paramref name="session"/>.</summary>
    static T InSessionOf<T>(TestProbe probe, Guid session)
    {
        var message = probe.ExpectMsg<InSession>(TimeSpan.FromSeconds(30));
        Assert.Equal(session, message.Session);
        return Assert.IsType<T>(message.Message);
    }

    sealed class Instant : ILocalTraining
    {
        public int SampleCount => 10;
        public Task<TrainResult> Train(string clientId, LocalTrain request) =>
            Task.FromResult(new TrainResult(new float[4], SampleCount, 0.5, 0.5, TimeSpan.Zero));
    }

    sealed class Forwarder : ReceiveActor
    {
        public Forwarder(IActorRef to) => ReceiveAny(m => to.Forward(m));
    }

    /// <summary>
    /// A server lost as its clients upload (before a standby takes over, or a network that drops): the update is sound,
    /// so the client is not restarted (which had each client log an error with a stack trace); it reports the round
    /// failed, with the reason, in one warning, and trains the next request.
    /// </summary>
    [Fact]
    public async Task An_update_that_cannot_reach_the_servers_weight_channel_is_reported_failed_without_restarting_the_client()
    {
        var server = ActorSystem.Create("server", Remote);
        using var channel = new WeightChannelClient(null);
        try
        {
            // the server, across the wire: a forwarder in its own actor system, so the client uploads over TCP
            var probe = CreateTestProbe();
            var forwarder = server.ActorOf(Props.Create(() => new Forwarder(probe.Ref)), "coordinator");
            var serverAddress = ((ExtendedActorSystem)server).Provider.DefaultAddress;
            var remote = await Sys.ActorSelection(forwarder.Path.ToStringWithAddress(serverAddress)).ResolveOne(TimeSpan.FromSeconds(10));
            // a port the OS handed out and that nothing listens on any more: its weight channel is gone
            var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            listener.Start();
            int gone = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();

            var session = Guid.NewGuid();
            var client = Sys.ActorOf(FederatedClient.Props("client-001", new Instant(), Layout, Akka.Streams.ActorMaterializer.Create(Sys), channel: channel, session: session));
            var config = new TrainConfig(1, 10, 0.1, 0, 0);
            await EventFilter.Error().ExpectAsync(0, async () =>
            {
                await EventFilter.Warning(contains: "did not reach the server").ExpectOneAsync(() =>
                {
                    client.Tell(new LocalTrain(3, 1, new float[4], config, 7, remote, UploadPort: gone));
                    var failed = InSessionOf<TrainingFailed>(probe, session);
                    Assert.Equal((3, "client-001"), (failed.Round, failed.ClientId));
                    Assert.Contains($"its update did not reach the server at {serverAddress}: cannot reach the server's weight channel at 127.0.0.1:{gone}",
                        failed.Reason);
                    return Task.CompletedTask;
                });
                // idle again, the same actor: the next request is trained and its update submitted
                var local = CreateTestProbe();
                client.Tell(new LocalTrain(4, 1, new float[4], config, 8, local.Ref));
                Assert.Equal(4, InSessionOf<UpdateSubmitted>(local, session).Round);
            });
        }
        finally
        {
            await server.Terminate();
        }
    }
}
