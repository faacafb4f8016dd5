using FedAvg.Core.Models;
using FedAvg.Core.Runtime;
using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

/// <summary>Server-optimizer state through a checkpoint: a resumed run goes on bit for bit.</summary>
public class StrategyStateTests
{
    static readonly WeightLayout Layout = new([new WeightEntry("w", [3, 7], 0, 21)]);

    static ClientUpdate[] RoundUpdates(int round) =>
        Ids(4).Select((id, k) => U(id, 10 + k, Kit.Random(new Random(round * 100 + k), 21))).ToArray();

    public static TheoryData<string> Stateful => new() { "fedavgm", "fedadam", "fedyogi", "fedadagrad" };

    static IStrategy Make(string name) => StrategyRegistry.Create(name,
        name == "fedavgm" ? new Dictionary<string, string> { ["server-momentum"] = "0.9", ["server-lr"] = "0.7" } : new(), Options());

    [Theory]
    [MemberData(nameof(Stateful))]
    public void Three_rounds_straight_equal_two_then_a_checkpoint_then_one(string name)
    {
        var start = Kit.Random(new Random(1), 21);
        var straight = Make(name);
        var w = start;
        for (int r = 1; r <= 3; r++) w = Round(straight, r, w, RoundUpdates(r));

        var first = Make(name);
        var w2 = Round(first, 2, Round(first, 1, start, RoundUpdates(1)), RoundUpdates(2));
        var dir = Directory.CreateTempSubdirectory("fedavg-state-");
        try
        {
            var path = Path.Combine(dir.FullName, Checkpoint.FileName);
            new Checkpoint("test-model", Layout, 2, 1, w2, first.Name, first.SaveState()).Save(path);
            var loaded = Checkpoint.Load(path, "test-model", name);
            Assert.Equal(name, loaded.StrategyName);
            Assert.NotEmpty(loaded.StrategyState);
            var resumed = Make(name);
            resumed.LoadState(loaded.StrategyState);
            var w3 = Round(resumed, 3, loaded.Weights, RoundUpdates(3));
            Assert.Equal(w, w3);
            Assert.Equal(straight.SaveState(), resumed.SaveState());
            // without the state the third round differs: the test would notice a lost state
            Assert.NotEqual(w, Round(Make(name), 3, loaded.Weights, RoundUpdates(3)));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void State_is_refused_by_another_strategy_and_by_a_stateless_one()
    {
        var adam = new FedAdamStrategy(Options());
        Round(adam, 1, new float[2], U("a", 1, 1, 1));
        var state = adam.SaveState();
        Assert.Throws<DataException>(() => new FedYogiStrategy(Options()).LoadState(state));
        Assert.Throws<DataException>(() => new FedAvgStrategy(Options()).LoadState(state));
        Assert.Throws<DataException>(() => new FedAdamStrategy(Options()).LoadState(state.AsSpan(0, state.Length - 4)));
        Assert.Empty(new KrumStrategy(Options()).SaveState());
    }

    [Fact]
    public void A_version_1_checkpoint_reads_as_fedavg_with_empty_state()
    {
        // version 1 as c1232c7 wrote it: magic, 1, model, layout, round, seed, count, weights, sha256
        float[] weights = [1.5f, -2f, 3.25f];
        using var body = new MemoryStream();
        using (var w = new BinaryWriter(body, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            w.Write("FEDAVGCK"u8);
            w.Write(1);
            w.Write("m");
            w.Write(1);
            w.Write("w");
            w.Write(1);
            w.Write(3L);
            w.Write(4); // round
            w.Write(9); // seed
            w.Write(3);
            foreach (var x in weights) w.Write(x);
        }
        var bytes = body.ToArray();
        var dir = Directory.CreateTempSubdirectory("fedavg-v1-");
        try
        {
            var path = Path.Combine(dir.FullName, Checkpoint.FileName);
            File.WriteAllBytes(path, [.. bytes, .. System.Security.Cryptography.SHA256.HashData(bytes)]);
            var c = Checkpoint.Load(path, "m");
            Assert.Equal(("fedavg", 0, 4, 9), (c.StrategyName, c.StrategyState.Length, c.Round, c.Seed));
            Assert.Equal(weights, c.Weights);
            Assert.Contains("strategy 'fedavg'", Assert.Throws<DataException>(() => Checkpoint.Load(path, "m", "fedadam")).Message);
        }
        finally { dir.Delete(true); }
    }
}
