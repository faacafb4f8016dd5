using FedAvg.Actors.Faults;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Testing;
using FedAvg.Core;
using FedAvg.Core.Training;

[assembly: CollectionBehavior(DisableTestParallelization = true)] // deadlines and failure detectors: one federation at a time

namespace FedAvg.Actors.Testing.Tests;

/// <summary>The kit's pieces alone: corruptions by hand, seeded targeting, and the `fedavg.faults` checks.</summary>
public class FaultKitTests
{
    static readonly float[] Global = [1f, 2f, -1f];
    static TrainResult Local() => new([2f, 0f, -1f], 300, 0.5, 0.9, TimeSpan.Zero); // Δ = [1, −2, 0]

    [Fact]
    public void Corruptions_act_on_the_update_as_defined()
    {
        Assert.Equal([0f, 4f, -1f], Corruption.Apply(FaultBehaviour.SignFlip, Local(), Global, 1).Weights); // w_global − Δ
        Assert.Equal([11f, -18f, -1f], Corruption.Apply(FaultBehaviour.Scale(10), Local(), Global, 1).Weights); // w_global + 10Δ
        Assert.Equal([1.5f, 1f, -1f], Corruption.Apply(FaultBehaviour.Scale(0.5), Local(), Global, 1).Weights);
        Assert.All(Corruption.Apply(FaultBehaviour.NaN, Local(), Global, 1).Weights, w => Assert.True(float.IsNaN(w)));
        Assert.All(Corruption.Apply(FaultBehaviour.Inf, Local(), Global, 1).Weights, w => Assert.True(float.IsPositiveInfinity(w)));
        Assert.Equal([2f, 0f], Corruption.Apply(FaultBehaviour.WrongLength, Local(), Global, 1).Weights);
        var random = Corruption.Apply(FaultBehaviour.Random, Local(), Global, 42).Weights;
        Assert.All(random, w => Assert.InRange(w, -1f, 1f));
        Assert.Equal(random, Corruption.Apply(FaultBehaviour.Random, Local(), Global, 42).Weights); // seeded
        Assert.NotEqual(random, Corruption.Apply(FaultBehaviour.Random, Local(), Global, 43).Weights);
        var lie = Corruption.Apply(FaultBehaviour.Samples(-5), Local(), Global, 1);
        Assert.Equal(-5, lie.SampleCount);
        Assert.Equal([2f, 0f, -1f], lie.Weights);
    }

    [Fact]
    public void Noise_adds_seeded_gaussian_noise_of_sigma_to_every_coordinate()
    {
        const int d = 200_000;
        var global = new float[d];
        TrainResult Noisy(int seed) => Corruption.Apply(FaultBehaviour.Noise(0.5), new TrainResult(new float[d], 1, 0, 0, TimeSpan.Zero), global, seed);
        var a = Noisy(7).Weights;
        Assert.Equal(a, Noisy(7).Weights); // the same seed replays
        Assert.NotEqual(a, Noisy(8).Weights);
        double mean = a.Average(x => (double)x), sd = Math.Sqrt(a.Average(x => (double)x * x) - mean * mean);
        Assert.InRange(mean, -0.01, 0.01); // 0 ± 4.5 standard errors (0.5/√200000 ≈ 0.0011)
        Assert.InRange(sd, 0.49, 0.51);
    }

    [Fact]
    public void A_fraction_picks_the_same_seeded_ids_every_round_and_a_probability_replays()
    {
        var plan = new FaultPlan([Fault.SignFlip.OnFraction(0.2), Fault.Drop.WithProbability(0.5)], seed: 1, clientCount: 50);
        var picked = plan.TargetsOf(0)!;
        Assert.Equal(10, picked.Count);
        Assert.Equal(picked, new FaultPlan(plan.Rules, 1, 50).TargetsOf(0)!);
        Assert.NotEqual(picked.Order(), new FaultPlan(plan.Rules, 2, 50).TargetsOf(0)!.Order());
        for (int round = 1; round <= 5; round++)
            for (int k = 0; k < 50; k++)
            {
                var id = ClientIds.Of(k, 50);
                var firing = plan.Firing(round, id).Select(f => f.Behaviour.Name).ToList();
                Assert.Equal(picked.Contains(k), firing.Contains("sign-flip"));
                Assert.Equal(firing, new FaultPlan(plan.Rules, 1, 50).Firing(round, id).Select(f => f.Behaviour.Name));
            }
        int drops = Enumerable.Range(1, 20).Sum(r => Enumerable.Range(0, 50).Count(k => plan.Firing(r, ClientIds.Of(k, 50)).Any(f => f.Behaviour.Name == "drop")));
        Assert.InRange(drops, 430, 570); // 1000 draws at p = 0.5: 500 ± 4.4σ
    }

    [Fact]
    public void Rounds_and_clients_narrow_a_rule()
    {
        var plan = new FaultPlan([Fault.Crash.OnClients(2).InRound(1), Fault.Named("delay:30s").OnClients(3, 7).FromRound(2)], 1, 10);
        Assert.Equal(["crash"], plan.Firing(1, "client-002").Select(f => f.Behaviour.Name));
        Assert.Empty(plan.Firing(2, "client-002"));
        Assert.Empty(plan.Firing(1, "client-003"));
        Assert.Equal(["delay:30s"], plan.Firing(2, "client-007").Select(f => f.Behaviour.Name));
        Assert.Equal(TimeSpan.FromSeconds(30), plan.Firing(9, "client-003")[0].Behaviour.Delay);
    }

    static SimulationOptions Options(string faults, int clients = 4) =>
        SimulationOptions.FromConfig(Akka.Configuration.ConfigurationFactory.ParseString($"fedavg {{ clients = {clients}, faults = {faults} }}"));

    [Fact]
    public void Faults_from_hocon_read_back_from_config_conf_to_the_same_rules()
    {
        var options = Options("""[ { behaviour = sign-flip, fraction = 0.2 }, { behaviour = "scale:10", clients = [1] }, { behaviour = "delay:30s", clients = [3, 7], from-round = 2, probability = 0.5 } ]""", clients: 10);
        Assert.Equal(3, options.Faults.Count);
        Assert.Equal(new FaultRule(FaultBehaviour.DelayBy(TimeSpan.FromSeconds(30)), [3, 7], null, 0.5, 2), options.Faults[2]);
        var again = SimulationOptions.FromConfig(Akka.Configuration.ConfigurationFactory.ParseString(options.ToHocon()));
        Assert.Equal(options, again);
        Assert.Empty(SimulationOptions.FromConfig(Akka.Configuration.ConfigurationFactory.ParseString("fedavg { }")).Faults);
    }

    [Theory]
    [InlineData("[ { behaviour = drop, probability = 1.5 } ]", "fedavg.faults[0].probability must be in [0, 1], got 1.5")]
    [InlineData("[ { behaviour = drop }, { behaviour = explode } ]", "fedavg.faults[1].behaviour: unknown behaviour 'explode'; valid: crash, stop, delay:DURATION")]
    [InlineData("[ { behaviour = drop, clients = [1, 4] } ]", "fedavg.faults[0].clients: client 4 does not exist; this run has 4 clients, 0..3")]
    [InlineData("[ { behaviour = drop, clients = [1], fraction = 0.5 } ]", "fedavg.faults[0]: give either clients or fraction")]
    [InlineData("[ { behaviour = \"scale:x\" } ]", "fedavg.faults[0].behaviour: scale needs a number, got 'x'")]
    [InlineData("[ { behaviour = delay } ]", "fedavg.faults[0].behaviour: 'delay' needs an argument")]
    [InlineData("[ { behaviour = drop, when = 3 } ]", "fedavg.faults[0].when is not a fault setting. Valid: behaviour, clients")]
    [InlineData("{ behaviour = drop }", "fedavg.faults must be a list of faults")]
    [InlineData("[ { behaviour = drop, fraction = 0 } ]", "fedavg.faults[0].fraction must be in (0, 1], got 0")]
    public void Bad_faults_are_refused_before_any_work_naming_the_setting_and_the_reason(string faults, string message)
    {
        var e = Assert.Throws<UsageException>(() => Options(faults));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void A_run_directory_with_a_round_missing_or_damaged_is_reported_lost()
    {
        string dir = FedAvg.Tests.Shared.TestData.TempDir();
        var round1 = new RoundMetrics(1, 4, 4, 0, 1, 0.5, 0.9, 0.4, 1, 1, 0.01, 0.1, 1.2);
        File.WriteAllText(Path.Combine(dir, "rounds.jsonl"), System.Text.Json.JsonSerializer.Serialize(round1) + "\n");
        File.WriteAllText(Path.Combine(dir, "rounds.csv"), "round,…\n1,…\n");
        Assert.Contains("rounds.csv has 1 rounds, expected 2", Assert.Throws<LostRoundException>(() => CompletedRounds.VerifyRunDirectory(dir, 2)).Message);
        Assert.Contains("no checkpoint", Assert.Throws<LostRoundException>(() => CompletedRounds.VerifyRunDirectory(dir, 1)).Message);
        File.AppendAllText(Path.Combine(dir, "rounds.jsonl"), "{\"Round\": 2, \"Sampled\": \n");
        File.AppendAllText(Path.Combine(dir, "rounds.csv"), "2,…\n");
        Assert.Contains("rounds.jsonl:2: not a round record", Assert.Throws<LostRoundException>(() => CompletedRounds.VerifyRunDirectory(dir, 2)).Message);
    }

    [Fact]
    public void The_kit_refuses_a_client_that_does_not_exist_when_the_rule_is_added()
    {
        var e = Assert.Throws<UsageException>(() => new FaultKit(seed: 1, clients: 4).Add(Fault.Drop.OnClients(9)));
        Assert.Contains("client 9 does not exist", e.Message);
    }
}
