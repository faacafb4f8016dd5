using Akka.Configuration;
using Akka.TestKit.Xunit2;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Testing;
using FedAvg.Core.Data;
using FedAvg.Core.Partitioning;
using FedAvg.Core.Runtime;
using FedAvg.Tests.Shared;

namespace FedAvg.Actors.Testing.Tests;

/// <summary>
/// Faults injected with the kit into whole federations on real MNIST, real libtorch and a real actor system (every
/// message serialized, as between nodes). Where a fault must leave the run as if the faulty client had not answered,
/// the test compares bits with a run in which that client crashed: the same exclusion, reached another way.
/// Every test ends by checking that no completed round was lost (metrics and checkpoint).
/// </summary>
public class FaultSimulationTests : TestKit
{
    static Config Akka => HoconFiles.Load("simulation.conf", overrides: "akka.actor.serialize-messages = on");

    static SimulationOptions Small(int rounds = 2, string timeout = "2m", string strategy = "fedavg") =>
        SimulationOptions.FromConfig(HoconFiles.Load("simulation.conf", overrides: $$"""
            fedavg { model = seed001-2nn, clients = 6, partition = iid, rounds = {{rounds}}, fraction = 1.0,
                     local-epochs = 1, batch = 32, lr = 0.05, momentum = 0.5, seed = 3, strategy.name = {{strategy}},
                     trainers = 1, threads-per-trainer = 1, round-timeout = {{timeout}} }
            """));

    static LabeledImages Train => TestData.MnistTrain.Take(1800); // 300 samples per client
    static LabeledImages Test => TestData.MnistTest.Take(1000);

    /// <summary>Runs the federation with the kit's faults, keeping a checkpoint, and checks nothing completed was lost.</summary>
    static async Task<SimulationResult> Run(SimulationOptions options, FaultKit? faults = null)
    {
        string checkpoint = Path.Combine(TestData.TempDir(), Checkpoint.FileName);
        var shards = Partitioner.Parse(options.Partition).Split(Train.LabelValues, 10, options.Clients, options.Seed);
        var result = await new Simulation { Faults = faults, CheckpointPath = checkpoint }.RunAsync(options, Akka, Train, Test, shards);
        Assert.True(result.Completed, result.FailureReason);
        CompletedRounds.Verify(result, options.Rounds, checkpoint);
        return result;
    }

    static FaultKit Crashing(SimulationOptions o, params int[] clients) => FaultKit.For(o).Add(Fault.Crash.OnClients(clients));

    static string Reason(RoundMetrics round, string client) => Assert.Single(round.RejectedOrEmpty, r => r.ClientId == client).Reason;

    [Fact]
    public async Task A_client_that_crashes_is_restarted_and_one_that_stops_is_dropped_for_the_rest_of_the_run()
    {
        var options = Small(rounds: 3);
        var faults = FaultKit.For(options).Add(Fault.Crash.OnClients(1).InRound(1)).Add(Fault.Stop.OnClients(2).InRound(2));
        var result = await Run(options, faults);

        Assert.Equal([(6, 5), (6, 5), (5, 5)], result.Rounds.Select(r => (r.Sampled, r.Succeeded)));
        Assert.Contains("injected crash", Reason(result.Rounds[0], "client-001"));
        Assert.Equal("its actor stopped", Reason(result.Rounds[1], "client-002"));
        Assert.Empty(result.Rounds[2].RejectedOrEmpty); // the crashed client is back; the stopped one is no longer sampled
        Assert.Equal([new FaultFired(1, "client-001", "crash")], result.Rounds[0].Faults!);
        Assert.Equal([new FaultFired(2, "client-002", "stop")], result.Rounds[1].Faults!);
    }

    [Fact]
    public async Task A_dropped_reply_and_a_stale_one_count_as_missing_and_a_duplicate_counts_once()
    {
        var options = Small(timeout: "5s"); // a dropped or stale reply is only known missing at the deadline
        var faulty = await Run(options, FaultKit.For(options)
            .Add(Fault.Twice.OnClients(1)).Add(Fault.Drop.OnClients(2)).Add(Fault.Stale.OnClients(3)));
        var without = await Run(options, Crashing(options, 2, 3));

        Assert.Equal(without.FinalWeights, faulty.FinalWeights); // client 1 counted once, 2 and 3 not at all
        foreach (var round in faulty.Rounds)
        {
            Assert.Equal((6, 4), (round.Sampled, round.Succeeded));
            Assert.Equal("duplicate", Reason(round, "client-001"));
            Assert.Contains(round.RejectedOrEmpty, r => r.ClientId == "client-003" && r.Reason == $"stale (round {round.Round - 1}, current {round.Round})");
            Assert.Contains(round.RejectedOrEmpty, r => r.ClientId == "client-002" && r.Reason == "no answer by the deadline (5s)");
        }
    }

    [Fact]
    public async Task Lying_updates_are_rejected_with_their_reason_and_leave_the_run_as_if_those_clients_had_not_answered()
    {
        var options = Small();
        var faulty = await Run(options, FaultKit.For(options)
            .Add(Fault.NaN.OnClients(1)).Add(Fault.Inf.OnClients(2)).Add(Fault.WrongLength.OnClients(3))
            .Add(Fault.ClaimSamples(0).OnClients(4)).Add(Fault.ClaimSamples(1_000_000).OnClients(5)));
        var without = await Run(options, Crashing(options, 1, 2, 3, 4, 5));

        Assert.Equal(without.FinalWeights, faulty.FinalWeights);
        int length = faulty.Layout.TotalLength;
        foreach (var round in faulty.Rounds)
        {
            Assert.Equal((6, 1), (round.Sampled, round.Succeeded));
            Assert.Equal("non-finite weights (NaN or infinity)", Reason(round, "client-001"));
            Assert.Equal("non-finite weights (NaN or infinity)", Reason(round, "client-002"));
            Assert.Equal($"malformed ({length - 1} weights, model has {length})", Reason(round, "client-003"));
            Assert.Equal("inconsistent (claims 0 samples, registered 300)", Reason(round, "client-004"));
            Assert.Equal("inconsistent (claims 1000000 samples, registered 300)", Reason(round, "client-005"));
        }
    }

    [Fact]
    public async Task A_client_slower_than_the_deadline_is_left_out_and_its_late_update_never_mixes_into_a_later_round()
    {
        var options = Small(timeout: "5s");
        var slow = await Run(options, FaultKit.For(options).Add(Fault.Delay(TimeSpan.FromSeconds(30)).OnClients(4)));
        var without = await Run(options, Crashing(options, 4));

        // Round 2 would differ from the crash run if round 1's late update had been folded into it.
        Assert.Equal(without.FinalWeights, slow.FinalWeights);
        Assert.All(slow.Rounds, r => Assert.Equal((6, 5), (r.Sampled, r.Succeeded)));
        Assert.All(slow.Rounds, r => Assert.StartsWith("no answer by the deadline", Reason(r, "client-004")));
    }

    [Fact]
    public async Task An_update_far_outside_the_others_ruins_fedavg_and_not_the_coordinate_wise_median()
    {
        // The rule knows nothing of who lies: the median of each coordinate over the six updates.
        var fedavg = Small(strategy: "fedavg") with { LocalEpochs = 5 };
        var median = Small(strategy: "median") with { LocalEpochs = 5 };
        var clean = await Run(median);
        var attackedMedian = await Run(median, FaultKit.For(median).Add(Fault.Scale(100).OnClients(1)));
        var attackedFedAvg = await Run(fedavg, FaultKit.For(fedavg).Add(Fault.Scale(100).OnClients(1)));

        double accuracy(SimulationResult r) => r.Rounds[^1].TestAccuracy;
        Assert.InRange(accuracy(attackedMedian), accuracy(clean) - 0.03, 1.0);
        Assert.True(accuracy(attackedFedAvg) < accuracy(clean) - 0.3,
            $"fedavg under a ×100 update: {accuracy(attackedFedAvg):F3}, clean median {accuracy(clean):F3}");
    }

    [Fact]
    public async Task The_norm_rule_refuses_x10_updates_and_fedavg_survives_them()
    {
        // The rule knows nothing of who lies either: each ‖Δ‖ against 3 × the median ‖Δ‖ of the round's updates.
        var fedavg = Small(rounds: 4) with { LocalEpochs = 5 };
        var ruled = fedavg with { MaxUpdateNorm = 3 };
        FaultKit Attack() => FaultKit.For(fedavg).Add(Fault.Scale(10).OnClients(1, 4));
        var clean = await Run(fedavg);
        var cleanRuled = await Run(ruled);
        var attacked = await Run(fedavg, Attack());
        var attackedRuled = await Run(ruled, Attack());

        double accuracy(SimulationResult r) => r.Rounds[^1].TestAccuracy;
        // measured: clean 0.833, attacked 0.184, attacked with the rule 0.830
        Assert.True(accuracy(attacked) < accuracy(clean) - 0.3, $"fedavg under ×10 updates: {accuracy(attacked):F3}, clean {accuracy(clean):F3}");
        Assert.InRange(accuracy(attackedRuled), accuracy(clean) - 0.03, 1.0);
        // with nobody lying the rule refuses nothing: the bits of the run without it (the honest rounds' medians: 1.40, 2.35, 1.44, 1.15)
        Assert.Equal(clean.FinalWeights, cleanRuled.FinalWeights);
        Assert.All(cleanRuled.Rounds, r => Assert.Empty(r.RejectedOrEmpty));
        // in every round both liars are refused, and only they
        Assert.Equal([4, 4, 4, 4], attackedRuled.Rounds.Select(r => r.Succeeded));
        foreach (var round in attackedRuled.Rounds)
        {
            Assert.Equal(["client-001", "client-004"], round.RejectedOrEmpty.Select(r => r.ClientId));
            Assert.All(round.RejectedOrEmpty, r => Assert.Matches(@"^update norm [\d.]+ is more than 3× the round's median \([\d.]+\)$", r.Reason));
            Assert.Equal(2, round.FaultsOrEmpty.Count);
        }
        // refused is as if they had not answered: the bits of a run in which both crashed every round
        Assert.Equal((await Run(fedavg, Crashing(fedavg, 1, 4))).FinalWeights, attackedRuled.FinalWeights);
    }

    [Fact]
    public async Task Seeded_faults_replay_exactly_and_are_reported_to_a_probe()
    {
        var options = Small();
        var probe = CreateTestProbe();
        var first = FaultKit.For(options).Add(Fault.Noise(0.01).OnFraction(0.5).WithProbability(0.5)).ReportTo(probe.Ref);
        var a = await Run(options, first);
        var reported = probe.ReceiveN(first.Fired.Count).Cast<FaultFired>().ToList();
        probe.ExpectNoMsg(TimeSpan.FromMilliseconds(200));

        var second = FaultKit.For(options).Add(Fault.Noise(0.01).OnFraction(0.5).WithProbability(0.5));
        var b = await Run(options, second);

        Assert.NotEmpty(first.Fired);
        Assert.Equal(first.Fired.OrderBy(f => (f.Round, f.ClientId)), second.Fired.OrderBy(f => (f.Round, f.ClientId)));
        Assert.Equal(first.Fired.OrderBy(f => (f.Round, f.ClientId)), reported.OrderBy(f => (f.Round, f.ClientId)));
        Assert.Equal(a.FinalWeights, b.FinalWeights);
        Assert.All(first.Fired, f => Assert.Contains(f.ClientId, first.TargetsOf(0)!.Select(k => ClientIds.Of(k, 6))));
        Assert.Equal(a.Rounds.SelectMany(r => r.FaultsOrEmpty), first.Fired.OrderBy(f => (f.Round, f.ClientId)));
    }

    [Fact]
    public async Task A_fraction_smaller_than_one_client_still_makes_one_client_faulty()
    {
        var options = Small(rounds: 1); // 6 clients: 0.05 of them is 0.3, which rounded to no client at all
        var faults = FaultKit.For(options).Add(Fault.NaN.OnFraction(0.05));
        int picked = Assert.Single(faults.TargetsOf(0)!);
        var result = await Run(options, faults);

        var round = Assert.Single(result.Rounds);
        Assert.Equal([new FaultFired(1, ClientIds.Of(picked, 6), "nan")], round.FaultsOrEmpty);
        Assert.StartsWith("non-finite", Reason(round, ClientIds.Of(picked, 6)));
        Assert.Equal(5, round.Succeeded);
    }
}
