using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Core.Tests.Strategies;

/// <summary>Small helpers shared by the strategy tests: updates, options, running one round.</summary>
static class Kit
{
    public static ClientUpdate U(string id, int n, params float[] w) => new(id, w, n, 0, 0);

    public static FedAvgOptions Options(double c = 1.0, int min = 1, int seed = 1) => new(c, min, new TrainConfig(1, 10, 0.1), seed);

    public static string[] Ids(int k) => Enumerable.Range(0, k).Select(i => ((char)('a' + i)).ToString()).ToArray();

    /// <summary>One round of <paramref name="strategy"/> from <paramref name="current"/> over <paramref name="updates"/>, accepted in the given order.</summary>
    public static float[] Round(IStrategy strategy, int round, float[] current, params ClientUpdate[] updates)
    {
        var plan = strategy.ConfigureRound(round, updates.Select(u => u.ClientId).ToList());
        var aggregator = strategy.StartAggregation(plan, current);
        foreach (var u in updates) aggregator.Accept(u with { Weights = (float[])u.Weights.Clone() });
        return aggregator.Complete();
    }

    public static void Close(double[] expected, float[] actual, double tolerance = 1e-6)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * Math.Max(1, Math.Abs(expected[i])),
                $"[{i}]: expected {expected[i]}, got {actual[i]}");
    }

    public static float[] Random(Random rng, int length, double scale = 1) =>
        Enumerable.Range(0, length).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale)).ToArray();
}
