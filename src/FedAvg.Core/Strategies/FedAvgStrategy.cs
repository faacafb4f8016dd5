using System.Numerics;
using System.Runtime.InteropServices;
using FedAvg.Core.Training;

namespace FedAvg.Core.Strategies;

/// <summary>Settings of Federated Averaging (McMahan et al. 2017): C, the minimum per round, and local training.</summary>
public sealed record FedAvgOptions(double Fraction, int MinClients, TrainConfig Train, int Seed)
{
    public void Validate()
    {
        Require.InRange(Fraction, 0, 1, "fraction (C)");
        Require.AtLeast(MinClients, 1, "min-clients");
        Train.Validate();
    }
}

/// <summary>
/// FedAvg: each round samples max(C·K, min) clients at random (seeded by run seed and round, so a resumed
/// run samples what the uninterrupted one would), and sets w ← Σ nₖ·wₖ / Σ nₖ.
/// </summary>
public sealed class FedAvgStrategy : IStrategy
{
    public FedAvgOptions Options { get; }
    public string Name => "fedavg";

    public FedAvgStrategy(FedAvgOptions options)
    {
        options.Validate();
        Options = options;
    }

    public RoundPlan ConfigureRound(int round, IReadOnlyList<string> availableClients)
    {
        int available = availableClients.Count;
        if (available < Options.MinClients)
            throw new InvalidOperationException($"round {round}: {available} clients available, fewer than min-clients {Options.MinClients}.");
        int wanted = Math.Max(Options.MinClients, (int)Math.Ceiling(Options.Fraction * available - 1e-9));
        wanted = Math.Min(wanted, available);
        var sorted = availableClients.Order(StringComparer.Ordinal).ToArray();
        var rng = new Random(Runtime.Seeds.Derive(Options.Seed, round, Runtime.Seeds.ClientSampling));
        Partitioning.Partitioner.Shuffle<string>(sorted, rng);
        var chosen = sorted.Take(wanted).Order(StringComparer.Ordinal).ToArray();
        return new RoundPlan(round, chosen, Options.Train, Math.Min(Options.MinClients, wanted));
    }

    public float[] Aggregate(int round, ReadOnlySpan<float> current, IReadOnlyList<ClientUpdate> updates) =>
        WeightedAverage(current.Length, updates);

    /// <summary>
    /// Σ nₖ·wₖ / Σ nₖ, accumulated in ascending client-id order so that the bits do not depend on arrival order.
    /// </summary>
    public static float[] WeightedAverage(int length, IReadOnlyList<ClientUpdate> updates)
    {
        if (updates.Count == 0) throw new ArgumentException("no updates to aggregate.");
        long total = 0;
        foreach (var u in updates)
        {
            if (u.Weights.Length != length)
                throw new ArgumentException($"update from {u.ClientId} has {u.Weights.Length} weights, expected {length}.");
            if (u.SampleCount <= 0) throw new ArgumentException($"update from {u.ClientId} claims {u.SampleCount} samples.");
            total += u.SampleCount;
        }
        var ordered = updates.OrderBy(u => u.ClientId, StringComparer.Ordinal).ToArray();
        for (int i = 1; i < ordered.Length; i++)
            if (ordered[i].ClientId == ordered[i - 1].ClientId)
                throw new ArgumentException($"two updates from {ordered[i].ClientId}.");

        var result = new float[length];
        foreach (var u in ordered)
            MultiplyAdd(result, u.Weights, (float)((double)u.SampleCount / total));
        return result;
    }

    /// <summary>acc += x · factor, vectorised.</summary>
    public static void MultiplyAdd(Span<float> acc, ReadOnlySpan<float> x, float factor)
    {
        var accV = MemoryMarshal.Cast<float, Vector<float>>(acc);
        var xV = MemoryMarshal.Cast<float, Vector<float>>(x);
        var f = new Vector<float>(factor);
        for (int i = 0; i < accV.Length; i++) accV[i] += xV[i] * f;
        for (int i = accV.Length * Vector<float>.Count; i < acc.Length; i++) acc[i] += x[i] * factor;
    }
}
