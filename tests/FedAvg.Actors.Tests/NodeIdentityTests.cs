using System.Security.Cryptography;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Server;
using FedAvg.Actors.Transfer;
using FedAvg.Core;
using FedAvg.Core.Models;
using FedAvg.Core.Runtime;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;
using FedAvg.Tests.Shared;

namespace FedAvg.Actors.Tests;

/// <summary>
/// With TLS a node's id is its certificate's name, proven by a signature in its join, and the coordinator proves a
/// server certificate in its welcome (Hosting/NodeIdentity), with real certificates of `fedavg certs` and a real
/// coordinator. Before, any member with a certificate of the federation could join under the id of another node (a
/// node that is gone, or in own-data mode a client: its id is the node's). The node's side: ClientHostTests.
/// </summary>
public sealed class NodeIdentityTests : TestKit
{
    const string Model = "seed001-2nn";
    readonly TestCertificates certs = new();
    readonly TrainerPool pool = new(Model, 1, 1);
    readonly WeightLayout layout;
    readonly float[] initial;
    static readonly Address Here = new("akka.ssl.tcp", "fedavg", "10.0.0.6", 4060);
    static readonly Address Server = new("akka.ssl.tcp", "fedavg", "10.0.0.5", 4053);

    public NodeIdentityTests() : base(HoconFiles.Load("simulation.conf", overrides: "akka.test.single-expect-default = 15s"))
    {
        using var model = ModelZoo.Create(Model, 1);
        layout = WeightLayout.Of(model);
        initial = Weights.Read(model, layout);
    }

    NodeIdentity Of(string name, string role = FederationCertificates.RoleClient, bool otherCa = false) =>
        new(TestCertificates.Load(certs.Issue(name, role, otherCa), role == FederationCertificates.RoleServer ? ClusterHosting.ServerRole : ClusterHosting.ClientRole));

    /// <summary>A coordinator of one client and one round, with <paramref name="identity"/> as its TLS, in <paramref name="system"/>.</summary>
    (IActorRef Server, Akka.TestKit.TestProbe Observer) StartCoordinator(ActorSystem system, NodeIdentity identity)
    {
        var observer = CreateTestProbe();
        observer.IgnoreMessages(m => m is ServerEvent);
        var strategy = new FedAvgStrategy(new FedAvgOptions(1.0, 1, new TrainConfig(1, 10, 0.1), Seed: 1));
        var settings = new ServerSettings(Model, layout, 1, 1, TimeSpan.FromMinutes(1), 1, Seed: 1, MinClients: 1);
        return (system.ActorOf(ServerGuardian.Props(FederationServer.Props(strategy, settings, initial,
            w => pool.Evaluate(w, TestData.MnistTest.Take(200)), observer, identity: identity), observer)), observer);
    }

    static JoinFederation Join(string node, Guid session, NodeProof? proof, string federation = "fedavg") =>
        new(node, federation, new ClientRange(0, 0), session, proof);

    [Fact]
    public void A_join_counts_only_with_a_proof_from_the_certificate_named_as_the_node_for_that_session_address_and_federation()
    {
        var server = Of("server", FederationCertificates.RoleServer);
        var (nodeA, mallory) = (Of("node-a"), Of("mallory"));
        var session = Guid.NewGuid();
        var honest = nodeA.ProveJoin("fedavg", "node-a", session, Here);
        Assert.Null(server.JoinRejection(Join("node-a", session, honest), Here));

        // the same proof for anything else than what it was signed for
        var elsewhere = new Address("akka.ssl.tcp", "fedavg", "10.0.0.66", 4060);
        Assert.StartsWith("its proof does not verify from 10.0.0.66:4060", server.JoinRejection(Join("node-a", session, honest), elsewhere));
        Assert.Contains("does not verify", server.JoinRejection(Join("node-a", Guid.NewGuid(), honest), Here));
        Assert.Contains("does not verify", server.JoinRejection(Join("node-a", session, honest, federation: "other"), Here));
        // the protocol (the trttl adapter of fault-injection tests) is not part of the address signed
        Assert.Null(server.JoinRejection(Join("node-a", session, honest), new Address("akka.trttl.ssl.tcp", "fedavg", "10.0.0.6", 4060)));

        // another member of the federation, under node-a's id
        Assert.Contains("proves no certificate", server.JoinRejection(Join("node-a", session, null), Here));
        Assert.Equal("it joins as node node-a with the certificate of 'mallory' (CN=mallory, OU=client, O=fedavg federation): with TLS a node's id is its certificate's name",
            server.JoinRejection(Join("node-a", session, mallory.ProveJoin("fedavg", "node-a", session, Here)), Here));
        // node-a's certificate (public: NAME.crt) with mallory's signature, or a signature cut short
        var borrowed = new NodeProof(nodeA.Tls.Certificate.RawData, mallory.ProveJoin("fedavg", "node-a", session, Here).Signature);
        Assert.Contains("it was not signed with the key of 'CN=node-a", server.JoinRejection(Join("node-a", session, borrowed), Here));
        Assert.Contains("does not verify", server.JoinRejection(Join("node-a", session, honest with { Signature = honest.Signature[..10] }), Here));

        // certificates that are not a node's of this federation
        Assert.Contains("is not signed by the federation's CA",
            server.JoinRejection(Join("node-b", session, Of("node-b", otherCa: true).ProveJoin("fedavg", "node-b", session, Here)), Here));
        Assert.Equal("its certificate 'CN=node-c, OU=server, O=fedavg federation' is issued for role 'server', not 'client'",
            server.JoinRejection(Join("node-c", session, Of("node-c", FederationCertificates.RoleServer).ProveJoin("fedavg", "node-c", session, Here)), Here));
        Assert.StartsWith("its certificate cannot be read",
            server.JoinRejection(Join("node-a", session, honest with { Certificate = RandomNumberGenerator.GetBytes(600) }), Here));
        server.Tls.AddRevoked([nodeA.Tls.Certificate.GetSerialNumberString()]);
        Assert.Contains("is revoked", server.JoinRejection(Join("node-a", session, honest), Here));
    }

    [Fact]
    public void A_welcome_counts_only_with_a_server_certificates_proof_for_that_nodes_join_from_the_coordinators_address()
    {
        var node = Of("node-a");
        var (server, standby, mallory) = (Of("server", FederationCertificates.RoleServer), Of("standby", FederationCertificates.RoleServer), Of("mallory"));
        var session = Guid.NewGuid();
        var join = Join("node-a", session, null);
        var spec = new RunSpec("fedavg", "mnist", Model, 2, "iid", 1, false, 7);
        string? Check(NodeProof? proof, Address from, Guid? other = null) =>
            node.WelcomeRejection(new Welcome(spec, proof), "fedavg", "node-a", other ?? session, from);

        Assert.Null(Check(server.ProveWelcome(join, Server), Server));
        Assert.Null(Check(standby.ProveWelcome(join, Here), Here)); // any server of the federation: a standby that took over
        Assert.StartsWith("its welcome proves no server certificate", Check(null, Server));
        Assert.Equal("its welcome's certificate 'CN=mallory, OU=client, O=fedavg federation' is issued for role 'client', not 'server'",
            Check(mallory.ProveWelcome(join, Server), Server));
        Assert.StartsWith("its welcome's proof does not verify from 10.0.0.6:4060", Check(server.ProveWelcome(join, Server), Here));
        Assert.Contains("does not verify", Check(server.ProveWelcome(join, Server), Server, other: Guid.NewGuid())); // another node's welcome
        Assert.Contains("does not verify", Check(server.ProveJoin("fedavg", "node-a", session, Server), Server)); // a join's signature is no welcome
        Assert.Contains("is not signed by the federation's CA", Check(Of("server", FederationCertificates.RoleServer, otherCa: true).ProveWelcome(join, Server), Server));
    }

    [Fact]
    public void A_standby_join_counts_only_with_a_server_certificates_proof_for_that_session_and_address()
    {
        var (server, standby, node) = (Of("server", FederationCertificates.RoleServer), Of("standby", FederationCertificates.RoleServer), Of("node-a"));
        var session = Guid.NewGuid();
        StandbyJoin With(NodeProof? proof) => new("fedavg", "fedavg.simulation {}", session, proof);
        Assert.Null(server.StandbyJoinRejection(With(standby.ProveStandbyJoin("fedavg", session, Here)), Here));
        Assert.StartsWith("it proves no server certificate", server.StandbyJoinRejection(With(null), Here));
        Assert.Equal("its certificate 'CN=node-a, OU=client, O=fedavg federation' is issued for role 'client', not 'server'",
            server.StandbyJoinRejection(With(node.ProveStandbyJoin("fedavg", session, Here)), Here));
        Assert.Contains("does not verify", server.StandbyJoinRejection(With(standby.ProveStandbyJoin("fedavg", session, Here)), Server));
        Assert.Contains("does not verify", server.StandbyJoinRejection(With(standby.ProveStandbyJoin("fedavg", Guid.NewGuid(), Here)), Here));
        // a welcome's signature (a server's, for a node's join) is no standby's join
        Assert.Contains("does not verify", server.StandbyJoinRejection(With(standby.ProveWelcome(Join("", session, null), Here)), Here));
    }

    [Fact]
    public void With_TLS_a_nodes_id_is_its_certificates_name_and_another_one_is_refused_at_start_naming_both()
    {
        var tls = Of("node-a").Tls;
        Assert.Equal("node-a", NodeIdentity.IdOf(tls, null));
        Assert.Equal("node-a", NodeIdentity.IdOf(tls, "node-a"));
        var error = Assert.Throws<UsageException>(() => NodeIdentity.IdOf(tls, "hospital-7"));
        Assert.StartsWith("--node-id hospital-7: with TLS a node's id is the name of its certificate, 'node-a'", error.Message);
        Assert.Contains("fedavg certs issue hospital-7", error.Message);
    }

    /// <summary>
    /// The coordinator of a TLS server (messages may come over the wire) refuses every join under node-a's id that does not
    /// prove node-a's certificate, names why, and keeps node-a's place; node-a itself is welcomed with the server's proof
    /// and trains the run.
    /// </summary>
    [Fact]
    public async Task A_coordinator_with_TLS_admits_a_node_only_under_its_certificates_name_and_the_honest_node_trains()
    {
        var identity = Of("server", FederationCertificates.RoleServer);
        var (nodeA, mallory) = (Of("node-a"), Of("mallory"));
        var wire = OverTheWire.Create("identity");
        try
        {
            var (server, observer) = StartCoordinator(wire, identity);
            var (honest, intruder) = (CreateTestProbe(), CreateTestProbe());
            Address address = honest.Ref.Path.Address; // the probes' as the server sees them (Sender.Path.Address)

            var (ours, theirs) = (Guid.NewGuid(), Guid.NewGuid());
            string client = ClientIds.Of(0, 1);
            foreach (var (proof, why) in new (NodeProof?, string)[]
                     {
                         (null, "proves no certificate"),
                         (mallory.ProveJoin("fedavg", "node-a", theirs, address), "with the certificate of 'mallory'"),
                         (new NodeProof(nodeA.Tls.Certificate.RawData, mallory.ProveJoin("fedavg", "node-a", theirs, address).Signature), "does not verify"),
                     })
            {
                intruder.Send(server, Join("node-a", theirs, proof));
                var refused = intruder.ExpectMsg<InSession>();
                Assert.Equal(theirs, refused.Session);
                Assert.Contains(why, Assert.IsType<JoinRefused>(refused.Message).Reason);
            }
            string revokedBefore = Of("node-y").Tls.Certificate.GetSerialNumberString(), revokedLater = Of("node-z").Tls.Certificate.GetSerialNumberString();
            identity.Tls.AddRevoked([revokedBefore]);
            var join = Join("node-a", ours, nodeA.ProveJoin("fedavg", "node-a", ours, address));
            honest.Send(server, join);
            var welcome = Assert.IsType<Welcome>(honest.ExpectMsg<InSession>().Message);
            // then the server's revocations, so that the node refuses the members the server refuses
            Assert.Equal([revokedBefore], Assert.IsType<RevokedCertificates>(honest.ExpectMsg<InSession>().Message).Serials);
            // signed by the server for node-a's join, from the coordinator's address as another process sees it
            Assert.Null(nodeA.WelcomeRejection(welcome, "fedavg", "node-a", ours, ((ExtendedActorSystem)wire).Provider.DefaultAddress));
            // admitted now: a later join under its id is not it unless in its session
            intruder.Send(server, Join("node-a", theirs, mallory.ProveJoin("fedavg", "node-a", theirs, address)));
            Assert.Contains("with the certificate of 'mallory'", Assert.IsType<JoinRefused>(intruder.ExpectMsg<InSession>().Message).Reason);
            // its own repeated join (every 2 s until answered, and after RegisterAgain) is answered again
            honest.Send(server, join);
            Assert.IsType<Welcome>(honest.ExpectMsg<InSession>().Message);

            identity.Tls.AddRevoked([revokedLater]);
            honest.Send(server, new InSession(ours, new RegisterClients("node-a", layout.Hash, [new ClientEntry(client, 100, honest.Ref)])));
            Assert.IsType<Registered>(honest.ExpectMsg<InSession>().Message);
            // the round starts, and with it the node hears what was revoked since: only that
            var next = new[] { honest.ExpectMsg<InSession>().Message, honest.ExpectMsg<InSession>().Message };
            var round = Assert.Single(next.OfType<TrainRound>());
            Assert.Equal([revokedLater], Assert.Single(next.OfType<RevokedCertificates>()).Serials);
            var weights = Enumerable.Repeat(2f, layout.TotalLength).ToArray();
            honest.Send(server, new InSession(ours, new UpdateSubmitted(round.Round, client, 100, 0.5, 0.8, 0.01,
                new LocalWeights(WeightStream.Header(layout.Hash, round.Round, client, 100, weights), weights))));
            Assert.Equal(1, observer.ExpectMsg<RoundCompleted>().Metrics.Succeeded);
            Assert.All(observer.ExpectMsg<RunCompleted>().FinalWeights, w => Assert.Equal(2f, w));
        }
        finally
        {
            await wire.Terminate();
        }
    }

    /// <summary>
    /// Checking a join's proof costs the coordinator a chain build (about 1 ms), and any member can send joins at wire
    /// speed: past 20 checks in 10 s from one address the coordinator stops checking joins from there, says so once, and
    /// still answers the nodes it admitted.
    /// </summary>
    [Fact]
    public void A_flood_of_forged_joins_costs_the_coordinator_at_most_twenty_checks_and_one_line_each_and_the_admitted_node_is_answered()
    {
        var identity = Of("server", FederationCertificates.RoleServer);
        var (nodeA, mallory) = (Of("node-a"), Of("mallory"));
        // in this test's system, whose log the event filters read (one process: messages go without sessions)
        var (server, _) = StartCoordinator(Sys, identity);
        var (honest, intruder) = (CreateTestProbe(), CreateTestProbe());
        Address address = honest.Ref.Path.Address; // one address for both probes: the honest node's check counts too
        var ours = Guid.NewGuid();
        var join = Join("node-a", ours, nodeA.ProveJoin("fedavg", "node-a", ours, address));
        honest.Send(server, join);
        honest.ExpectMsg<Welcome>(); // 1 check

        var theirs = Guid.NewGuid();
        var forged = Join("node-a", theirs, mallory.ProveJoin("fedavg", "node-a", theirs, address));
        EventFilter.Warning(contains: "server: refusing node node-a at").ExpectOne(() => // the same refusal 19 times: one line
            EventFilter.Warning(contains: $"server: not checking more joins from {address} for now: over 20 in 10 s").ExpectOne(() =>
            {
                for (int i = 0; i < 30; i++) intruder.Send(server, forged);
            }));
        honest.Send(server, join); // its session: answered without a check, after the flood in the mailbox
        honest.ExpectMsg<Welcome>();
        Assert.All(intruder.ReceiveN(19), m => Assert.IsType<JoinRefused>(m));
        intruder.ExpectNoMsg(TimeSpan.Zero); // the other 11 were neither checked nor answered
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            certs.Dispose();
            pool.Dispose();
        }
    }
}
