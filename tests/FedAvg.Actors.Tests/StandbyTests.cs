using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Streams;
using Akka.TestKit.Xunit2;
using FedAvg.Actors.Client;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Server;
using FedAvg.Actors.Transfer;
using FedAvg.Core.Models;
using FedAvg.Core.Runtime;
using FedAvg.Core.Training;
using Xunit;

namespace FedAvg.Actors.Tests;

/// <summary>
/// The pieces of a standby server's takeover, each in a real actor system with real checkpoint files: the active
/// server's <see cref="StandbyFeed"/> and a standby's <see cref="StandbyReplica"/> (found by address, as across nodes),
/// the settings check, and a client that a new server asks for the round it is training. The takeover itself, across
/// processes, is ClusterProcessTests.A_standby_takes_over_from_a_killed_server_and_ends_with_the_uninterrupted_bits.
/// </summary>
public sealed class StandbyTests : TestKit
{
    const string Settings = "fedavg.simulation {\n  rounds = 6\n  trainers = 2\n  threads-per-trainer = 1\n  strategy {\n    name = fedavg\n  }\n}\n";

    public StandbyTests() : base(HoconFiles.Load("simulation.conf")) { }

    static Checkpoint CheckpointOf(int round, float value)
    {
        var layout = new WeightLayout([new WeightEntry("w", [3, 2], 0, 6), new WeightEntry("b", [2], 6, 2)]);
        return new Checkpoint("test-model", layout, round, 5, Enumerable.Repeat(value, 8).ToArray());
    }

    static RoundMetrics Record(int round) => new(round, 4, 4, 0, 1, 0.5 / round, 0.8 + round / 100.0, 0.6, 1, 1, 0, 0, 1);

    Address Local => ((ExtendedActorSystem)Sys).Provider.DefaultAddress;

    /// <summary>A feed of this test's run, reading the active server's checkpoint at <paramref name="active"/>.</summary>
    IActorRef Feed(string active) =>
        Sys.ActorOf(StandbyFeed.Props("fedavg", active, theirs => ClusterServer.SettingsRejection(Settings, theirs)), ClusterHosting.StandbyFeedName);

    /// <summary>A standby's replica that joins the feed of this actor system and keeps its checkpoint at <paramref name="standby"/>.</summary>
    TestProbeReports Replica(string standby, string standbySettings = Settings)
    {
        var reports = new TestProbeReports(CreateTestProbe());
        Sys.ActorOf(StandbyReplica.Props(Local, new StandbyJoin("fedavg", standbySettings, Guid.NewGuid()), standby, "test-model", "fedavg", reports.Tell));
        return reports;
    }

    static (string Active, string Standby) Paths()
    {
        string dir = FedAvg.Tests.Shared.TestData.TempDir();
        return (Path.Combine(dir, "active", Checkpoint.FileName), Path.Combine(dir, "standby", Checkpoint.FileName));
    }

    (IActorRef Feed, string ActivePath, string StandbyPath, TestProbeReports Reports) Start(string standbySettings = Settings)
    {
        var (active, standby) = Paths();
        var feed = Feed(active);
        return (feed, active, standby, Replica(standby, standbySettings));
    }

    /// <summary>What the replica tells its host, as messages to a probe.</summary>
    sealed class TestProbeReports(Akka.TestKit.TestProbe probe)
    {
        public Akka.TestKit.TestProbe Probe => probe;
        public void Tell(StandbyReport report) => probe.Ref.Tell(report);
    }

    [Fact]
    public void Each_round_the_standby_gets_the_record_then_the_checkpoint_byte_for_byte_and_the_end_only_after_the_last_one()
    {
        var (feed, active, standby, reports) = Start();
        Assert.Contains("standing by", reports.Probe.ExpectMsg<StandbyEvent>().Text);

        for (int round = 1; round <= 3; round++)
        {
            CheckpointOf(round, round).Save(active); // as the coordinator does before it reports the round
            feed.Tell(new RoundCompleted(Record(round)));
            Assert.Equal(round, reports.Probe.ExpectMsg<StandbyRound>().Metrics.Round);
            Assert.Equal(round, reports.Probe.ExpectMsg<StandbyKept>().Round);
            Assert.Equal(File.ReadAllBytes(active), File.ReadAllBytes(standby));
        }
        CheckpointOf(4, 4).Save(active);
        feed.Tell(new RoundCompleted(Record(4)));
        feed.Tell(new RunFinished(true, "completed after round 4")); // right behind the last round: it must wait for its replica
        Assert.Equal(4, reports.Probe.ExpectMsg<StandbyRound>().Metrics.Round);
        Assert.Equal(4, reports.Probe.ExpectMsg<StandbyKept>().Round);
        Assert.Equal(new StandbyRunOver(true, "completed after round 4"), reports.Probe.ExpectMsg<StandbyRunOver>());
        Assert.Equal(4, Checkpoint.Load(standby).Round);
    }

    [Fact]
    public void A_checkpoint_read_after_the_next_round_was_saved_waits_for_that_rounds_record()
    {
        var (feed, active, standby, reports) = Start();
        reports.Probe.ExpectMsg<StandbyEvent>();
        CheckpointOf(1, 1).Save(active);
        CheckpointOf(2, 2).Save(active); // the coordinator saved round 2 before the feed read the file for round 1's record
        feed.Tell(new RoundCompleted(Record(1)));
        reports.Probe.ExpectNoMsg(TimeSpan.FromMilliseconds(500)); // round 2's checkpoint without round 2's record: not yet
        Assert.False(File.Exists(standby));
        feed.Tell(new RoundCompleted(Record(2)));
        Assert.Equal(1, reports.Probe.ExpectMsg<StandbyRound>().Metrics.Round);
        Assert.Equal(2, reports.Probe.ExpectMsg<StandbyRound>().Metrics.Round);
        Assert.Equal(2, reports.Probe.ExpectMsg<StandbyKept>().Round);
        Assert.Equal(File.ReadAllBytes(active), File.ReadAllBytes(standby));
    }

    [Fact]
    public void A_standby_that_joins_mid_run_gets_every_earlier_record_and_the_latest_checkpoint()
    {
        var (active, standby) = Paths();
        var feed = Feed(active);
        for (int round = 1; round <= 2; round++)
        {
            CheckpointOf(round, round).Save(active);
            feed.Tell(new RoundCompleted(Record(round)));
        }
        var reports = Replica(standby);
        Assert.Contains("round 2", reports.Probe.ExpectMsg<StandbyEvent>().Text);
        Assert.Equal(1, reports.Probe.ExpectMsg<StandbyRound>().Metrics.Round);
        Assert.Equal(2, reports.Probe.ExpectMsg<StandbyRound>().Metrics.Round);
        Assert.Equal(2, reports.Probe.ExpectMsg<StandbyKept>().Round);
        Assert.Equal(File.ReadAllBytes(active), File.ReadAllBytes(standby));
    }

    [Fact]
    public void A_standby_with_other_run_settings_is_refused_with_the_setting_and_its_trainers_may_differ()
    {
        Assert.Null(ClusterServer.SettingsRejection(Settings, Settings.Replace("trainers = 2", "trainers = 1").Replace("threads-per-trainer = 1", "threads-per-trainer = 2")));
        var reason = ClusterServer.SettingsRejection(Settings, Settings.Replace("rounds = 6", "rounds = 7"));
        Assert.NotNull(reason);
        Assert.Contains("it has rounds = 7", reason);
        Assert.Contains("this server rounds = 6", reason);
        Assert.NotNull(ClusterServer.SettingsRejection(Settings, Settings.Replace("    name = fedavg\n", "")));

        var (_, _, standby, reports) = Start(Settings.Replace("rounds = 6", "rounds = 7"));
        Assert.Contains("rounds = 7", reports.Probe.ExpectMsg<StandbyRefusedBy>().Reason);
        Assert.False(File.Exists(standby));
    }

    [Fact]
    public void A_member_that_never_answers_the_join_makes_the_standby_give_up_with_the_reason()
    {
        var reports = new TestProbeReports(CreateTestProbe());
        // no feed at this address: the join goes to dead letters, as to a member that is no fedavg server
        Sys.ActorOf(StandbyReplica.Props(Local, new StandbyJoin("fedavg", Settings, Guid.NewGuid()), Path.Combine(FedAvg.Tests.Shared.TestData.TempDir(), Checkpoint.FileName),
            "test-model", "fedavg", reports.Tell, TimeSpan.FromSeconds(1)));
        Assert.Contains("did not answer the standby's join within 1 s", reports.Probe.ExpectMsg<StandbyRefusedBy>(TimeSpan.FromSeconds(10)).Reason);
    }

    [Fact]
    public async Task A_replica_that_fails_its_checks_is_dropped_by_name_and_the_standby_keeps_the_one_before()
    {
        string dir = FedAvg.Tests.Shared.TestData.TempDir();
        string standby = Path.Combine(dir, Checkpoint.FileName);
        var feed = CreateTestProbe(); // a lying active server: it answers the join, then sends what it likes
        // the replica looks for /user/standby-feed at the address it was given: this one hands what it gets to the probe
        var fakeFeed = Sys.ActorOf(Props.Create(() => new Forwarder(feed.Ref)), ClusterHosting.StandbyFeedName);
        var reports = new TestProbeReports(CreateTestProbe());
        var replica = Sys.ActorOf(StandbyReplica.Props(Local, new StandbyJoin("fedavg", Settings, Guid.NewGuid()), standby, "test-model", "fedavg", reports.Tell));
        feed.ExpectMsg<StandbyJoin>();
        replica.Tell(new StandbyAccepted(0), fakeFeed);
        reports.Probe.ExpectMsg<StandbyEvent>();

        var materializer = Sys.Materializer();
        CheckpointOf(1, 1).Save(Path.Combine(dir, "good.bin"));
        replica.Tell(await CheckpointTransfer.Offer(1, File.ReadAllBytes(Path.Combine(dir, "good.bin")), materializer), fakeFeed);
        Assert.Equal(1, reports.Probe.ExpectMsg<StandbyKept>().Round);

        // damaged in transit (the checksum), of another model, of another round than it claims, not a checkpoint at all
        var bytes = File.ReadAllBytes(Path.Combine(dir, "good.bin"));
        var damaged = await CheckpointTransfer.Offer(2, bytes, materializer);
        replica.Tell(damaged with { Checksum = damaged.Checksum ^ 0xff }, fakeFeed);
        Assert.Contains("checksum mismatch", reports.Probe.ExpectMsg<StandbyEvent>().Text);
        replica.Tell(await CheckpointTransfer.Offer(2, bytes, materializer), fakeFeed);
        Assert.Contains("holds round 1", reports.Probe.ExpectMsg<StandbyEvent>().Text);
        var foreign = new Checkpoint("other-model", CheckpointOf(2, 2).Layout, 2, 5, new float[8]);
        foreign.Save(Path.Combine(dir, "foreign.bin"));
        replica.Tell(await CheckpointTransfer.Offer(2, File.ReadAllBytes(Path.Combine(dir, "foreign.bin")), materializer), fakeFeed);
        Assert.Contains("other-model", reports.Probe.ExpectMsg<StandbyEvent>().Text);
        replica.Tell(await CheckpointTransfer.Offer(2, "not a checkpoint at all, but long enough to have a trailer"u8.ToArray(), materializer), fakeFeed);
        Assert.Contains("not a FedAvg.Actors checkpoint", reports.Probe.ExpectMsg<StandbyEvent>().Text);

        // and never back: round 1's checkpoint again (a round it holds) is ignored, unpulled
        replica.Tell(await CheckpointTransfer.Offer(1, bytes, materializer), fakeFeed);
        reports.Probe.ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        Assert.Equal(bytes, File.ReadAllBytes(standby)); // round 1's, as kept
    }

    /// <summary>
    /// With TLS the standby must refuse the nodes the server refuses, or a takeover would let a revoked node back in.
    /// Real certificates from FederationCertificates; the server's bundle and the standby's each have their own
    /// ca.crt and revoked.txt, as on two machines.
    /// </summary>
    [Fact]
    public void The_servers_revocations_reach_the_standby_when_it_joins_and_as_they_grow_and_the_network_never_lifts_one()
    {
        using var certs = new TestCertificates();
        var issued = new Dictionary<string, string>();
        string Issue(string name, string role = FederationCertificates.RoleClient) => issued[name] = certs.Issue(name, role);
        var Crt = TestCertificates.Crt;
        TransportSecurity Load(string pfx) => TestCertificates.Load(pfx, ClusterHosting.ServerRole);
        string server = Issue("server", FederationCertificates.RoleServer), standbyPfx = Issue("standby", FederationCertificates.RoleServer);
        using var a = Crt(Issue("node-a"));
        using var b = Crt(Issue("node-b"));
        using var c = Crt(Issue("node-c"));
        using var d = Crt(Issue("node-d"));
        string serverList = Path.Combine(Path.GetDirectoryName(server)!, FederationCertificates.RevokedFile);
        string standbyList = Path.Combine(Path.GetDirectoryName(standbyPfx)!, FederationCertificates.RevokedFile);
        void RevokeOnServer(string name)
        {
            FederationCertificates.Revoke(Path.ChangeExtension(issued[name], ".crt"), certs.Ca);
            File.Copy(Path.Combine(certs.Ca, FederationCertificates.RevokedFile), serverList, overwrite: true); // as the README says
        }

        RevokeOnServer("node-a");
        using var serverTls = Load(server);
        using var standbyTls = Load(standbyPfx);
        Assert.Null(standbyTls.Check(a));
        var (active, standbyPath) = Paths();
        var feed = Sys.ActorOf(StandbyFeed.Props("fedavg", active, theirs => ClusterServer.SettingsRejection(Settings, theirs), () => serverTls.Revoked,
            new NodeIdentity(serverTls)), ClusterHosting.StandbyFeedName);
        // with TLS a standby proves a certificate of role server: a member with a node's certificate, or none, gets no replica
        using var nodeTls = TestCertificates.Load(Issue("node-e"), ClusterHosting.ClientRole);
        var posing = Guid.NewGuid();
        feed.Tell(new StandbyJoin("fedavg", Settings, posing, new NodeIdentity(nodeTls).ProveStandbyJoin("fedavg", posing, Local)), TestActor);
        Assert.Equal("its certificate 'CN=node-e, OU=client, O=fedavg federation' is issued for role 'client', not 'server'", ExpectMsg<StandbyRefused>().Reason);
        feed.Tell(new StandbyJoin("fedavg", Settings, posing), TestActor);
        Assert.StartsWith("it proves no server certificate", ExpectMsg<StandbyRefused>().Reason);

        var reports = new TestProbeReports(CreateTestProbe());
        var session = Guid.NewGuid();
        var replica = Sys.ActorOf(StandbyReplica.Props(Local, new StandbyJoin("fedavg", Settings, session, new NodeIdentity(standbyTls).ProveStandbyJoin("fedavg", session, Local)),
            standbyPath, "test-model", "fedavg", reports.Tell, security: standbyTls));
        string Next() => reports.Probe.FishForMessage<StandbyEvent>(e => e is StandbyEvent v && v.Text.StartsWith("revoked"), TimeSpan.FromSeconds(10)).Text;

        // at the join: in force in the standby's process, and written beside its ca.crt
        Assert.Contains($"revoked 1 certificate(s) the server at {Local} revoked ({a.SerialNumber}); added to {standbyList}", Next());
        Assert.Contains("is revoked", standbyTls.Check(a));
        Assert.Contains(a.SerialNumber, FederationCertificates.ReadRevoked(standbyList));

        // a revocation copied to the server mid-run goes with the next round
        RevokeOnServer("node-b");
        feed.Tell(new RoundCompleted(Record(1)));
        Assert.Contains($"({b.SerialNumber})", Next());
        Assert.Contains("is revoked", standbyTls.Check(b));

        // the server's list emptied, then given only node-c: the standby adds node-c and keeps a and b
        File.WriteAllText(serverList, $"# a and b lifted by hand\n{c.SerialNumber}\n");
        feed.Tell(new RoundCompleted(Record(2)));
        Assert.Contains($"({c.SerialNumber})", Next());
        foreach (var gone in new[] { a, b, c }) Assert.Contains("is revoked", standbyTls.Check(gone));
        Assert.Equal(new[] { a, b, c }.Select(x => x.SerialNumber).Order(), FederationCertificates.ReadRevoked(standbyList).Order());

        // only the feed is heard: a member that is not it cannot revoke (nor send records or checkpoints)
        EventFilter.Warning(contains: "ignoring a RevokedCertificates from").ExpectOne(() =>
            replica.Tell(new RevokedCertificates([d.SerialNumber]), TestActor));
        Assert.Null(standbyTls.Check(d));
    }

    /// <summary>
    /// Over the wire Akka's sender proves nothing (Messages/Protocol.cs): before sessions, a checkpoint or an end of run
    /// sent with the feed's actor as its sender counted as the feed's, so any member could choose the checkpoint a
    /// standby would take over from, or end it.
    /// </summary>
    [Fact]
    public async Task Over_the_wire_a_standby_hears_its_feed_only_in_its_session_and_a_forged_checkpoint_or_end_changes_nothing()
    {
        var wire = OverTheWire.Create("wire");
        try
        {
            var (active, standby) = Paths();
            var feed = wire.ActorOf(StandbyFeed.Props("fedavg", active, theirs => ClusterServer.SettingsRejection(Settings, theirs)),
                ClusterHosting.StandbyFeedName);
            var reports = new TestProbeReports(CreateTestProbe());
            var replica = wire.ActorOf(StandbyReplica.Props(((ExtendedActorSystem)wire).Provider.DefaultAddress,
                new StandbyJoin("fedavg", Settings, Guid.NewGuid()), standby, "test-model", "fedavg", reports.Tell));
            Assert.Contains("standing by", reports.Probe.ExpectMsg<StandbyEvent>().Text);

            // another member's checkpoint of round 1 and end of run, each with the feed as its sender
            string forgedFile = Path.Combine(Path.GetDirectoryName(active)!, "forged.bin");
            CheckpointOf(1, 9).Save(forgedFile);
            var forged = await CheckpointTransfer.Offer(1, File.ReadAllBytes(forgedFile), Sys.Materializer());
            foreach (var message in new object[]
                     {
                         forged, new InSession(Guid.NewGuid(), forged), new RoundCompleted(Record(1)),
                         new RunFinished(true, "over, says another member"), new InSession(Guid.NewGuid(), new RunFinished(true, "over, says another member")),
                     })
                replica.Tell(message, feed);

            // the feed's round 1, then its end: the standby holds the active server's checkpoint, not the forged one
            CheckpointOf(1, 1).Save(active);
            feed.Tell(new RoundCompleted(Record(1)));
            Assert.Equal(1, reports.Probe.ExpectMsg<StandbyRound>().Metrics.Round);
            Assert.Equal(1, reports.Probe.ExpectMsg<StandbyKept>().Round);
            Assert.Equal(File.ReadAllBytes(active), File.ReadAllBytes(standby));
            feed.Tell(new RunFinished(true, "completed after round 1"));
            Assert.Equal(new StandbyRunOver(true, "completed after round 1"), reports.Probe.ExpectMsg<StandbyRunOver>());
        }
        finally
        {
            await wire.Terminate();
        }
    }

    /// <summary>
    /// Checking a standby's proof builds a chain to the CA (0.7-1.1 ms of the feed's time), and any member can send
    /// StandbyJoin at wire speed: the feed checks at most 20 per sender address in 10 s (Hosting/ProofBudget), as the
    /// coordinator does for node joins, and a standby it accepted is still answered.
    /// </summary>
    [Fact]
    public void A_flood_of_forged_standby_joins_costs_the_feed_at_most_twenty_checks_and_one_line_each_and_the_accepted_standby_is_answered()
    {
        using var certs = new TestCertificates();
        NodeIdentity Server(string name, bool otherCa = false) =>
            new(TestCertificates.Load(certs.Issue(name, FederationCertificates.RoleServer, otherCa), ClusterHosting.ServerRole));
        var (active, _) = Paths();
        var feed = Sys.ActorOf(StandbyFeed.Props("fedavg", active, theirs => ClusterServer.SettingsRejection(Settings, theirs), identity: Server("server")),
            ClusterHosting.StandbyFeedName);
        var (honest, intruder) = (CreateTestProbe(), CreateTestProbe()); // one address for both: the honest join's check counts too
        var ours = Guid.NewGuid();
        var join = new StandbyJoin("fedavg", Settings, ours, Server("standby").ProveStandbyJoin("fedavg", ours, Local));
        honest.Send(feed, join);
        honest.ExpectMsg<StandbyAccepted>(); // 1 check

        // a server certificate of another CA: its role and name pass, so each join costs a chain build
        var theirs = Guid.NewGuid();
        var forged = new StandbyJoin("fedavg", Settings, theirs, Server("mallory", otherCa: true).ProveStandbyJoin("fedavg", theirs, Local));
        EventFilter.Warning(contains: "standby feed: refusing the standby at").ExpectOne(() => // the same refusal 19 times: one line
            EventFilter.Warning(contains: $"standby feed: not checking more joins from {Local} for now: over 20 in 10 s").ExpectOne(() =>
            {
                for (int i = 0; i < 30; i++) intruder.Send(feed, forged);
            }));
        honest.Send(feed, join); // a retry of the accepted standby: answered without a check, after the flood in the mailbox
        honest.ExpectMsg<StandbyAccepted>();
        Assert.All(intruder.ReceiveN(19), m => Assert.IsType<StandbyRefused>(m));
        intruder.ExpectNoMsg(TimeSpan.Zero); // the other 11 were neither checked nor answered
    }

    sealed class Forwarder : ReceiveActor
    {
        public Forwarder(IActorRef to) => ReceiveAny(m => to.Forward(m));
    }

    /// <summary>Holds every round open until <see cref="Release"/>, and counts the rounds it trained.</summary>
    sealed class Held : ILocalTraining
    {
        readonly TaskCompletionSource release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly ConcurrentQueue<int> Trained = new();
        public int SampleCount => 10;
        public void Release() => release.TrySetResult();

        public async Task<TrainResult> Train(string clientId, LocalTrain request)
        {
            Trained.Enqueue(request.Round);
            await release.Task.ConfigureAwait(false);
            return new TrainResult(new float[4], SampleCount, 0.5, 0.5, TimeSpan.Zero);
        }
    }

    [Fact]
    public void A_client_asked_by_a_new_server_for_the_round_it_trains_sends_that_update_to_the_new_server_once()
    {
        var training = new Held();
        var client = Sys.ActorOf(FederatedClient.Props("client-001", training, 0x5eed, Sys.Materializer()));
        var lost = CreateTestProbe();
        var taken = CreateTestProbe();
        var global = new float[4];
        client.Tell(new LocalTrain(3, 1, global, new TrainConfig(1, 10, 0.1, 0, 0), 7, lost.Ref));
        AwaitCondition(() => training.Trained.Count == 1);
        client.Tell(new LocalTrain(3, 1, global, new TrainConfig(1, 10, 0.1, 0, 0), 7, taken.Ref)); // the standby, from round 2's checkpoint
        client.Tell(new LocalTrain(3, 2, global, new TrainConfig(1, 10, 0.1, 0, 0), 7, taken.Ref)); // and its retry: still the same round
        training.Release();

        var update = taken.ExpectMsg<UpdateSubmitted>();
        Assert.Equal((3, "client-001"), (update.Round, update.ClientId));
        lost.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        taken.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal([3], training.Trained);
    }
}
