using System.Numerics;
using System.Runtime.CompilerServices;
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

    public IRoundAggregator StartAggregation(RoundPlan plan, float[] current) => new OrderedWeightedSum(current.Length, plan.Clients);

    /// <summary>Σ nₖ·wₖ / Σ nₖ over all <paramref name="updates"/> (any order), as one round would compute it.</summary>
    public static float[] WeightedAverage(int length, IReadOnlyList<ClientUpdate> updates)
    {
        var ids = updates.Select(u => u.ClientId).Order(StringComparer.Ordinal).ToList();
        if (ids.Distinct().Count() != ids.Count) throw new ArgumentException($"two updates from one client: {string.Join(", ", ids)}.");
        var aggregator = new OrderedWeightedSum(length, ids);
        foreach (var u in updates) aggregator.Accept(u);
        return aggregator.Complete();
    }

    /// <summary>
    /// Σ nₖ·wₖ / Σ nₖ, folded in ascending client-id order so that the bits never depend on arrival order.
    /// An update that arrives before its predecessors waits; every other one is folded into the running sum at
    /// once and released, so a round whose updates come in roughly in order (they do: trainers take clients in
    /// the order they were asked) holds a handful of updates however many clients it samples.
    /// </summary>
    public sealed class OrderedWeightedSum : IRoundAggregator
    {
        // float32, like the weights: a double sum would return one update bit for bit, but it moves three times
        // the bytes and measured 3.6× a plain copy against 1.6× (docs/benchmarks.md); the rounding it saves is
        // far below what SGD notices.
        readonly float[] sum;
        readonly IReadOnlyList<string> order;
        readonly Dictionary<string, ClientUpdate> waiting = new();
        readonly HashSet<string> seen = new();
        int next;
        long samples;

        public OrderedWeightedSum(int length, IReadOnlyList<string> clientsInOrder)
        {
            sum = new float[length];
            order = clientsInOrder;
        }

        /// <summary>How many updates are held, waiting for an earlier client's (for tests and diagnostics).</summary>
        public int Waiting => waiting.Count;

        public void Accept(ClientUpdate update)
        {
            if (update.Weights.Length != sum.Length)
                throw new ArgumentException($"update from {update.ClientId} has {update.Weights.Length} weights, expected {sum.Length}.");
            if (update.SampleCount <= 0) throw new ArgumentException($"update from {update.ClientId} claims {update.SampleCount} samples.");
            if (!seen.Add(update.ClientId)) throw new ArgumentException($"two updates from {update.ClientId}.");
            waiting[update.ClientId] = update;
            while (next < order.Count && waiting.Remove(order[next], out var due))
            {
                Fold(due);
                next++;
            }
        }

        public float[] Complete()
        {
            // clients that never answered leave gaps: fold what is still waiting, in order
            for (; next < order.Count; next++)
                if (waiting.Remove(order[next], out var due)) Fold(due);
            if (waiting.Count > 0)
                throw new ArgumentException($"updates from clients outside the round: {string.Join(", ", waiting.Keys)}.");
            if (samples == 0) throw new ArgumentException("no updates to aggregate.");
            var total = new Vector<float>(samples);
            var v = MemoryMarshal.Cast<float, Vector<float>>(sum.AsSpan());
            for (int i = 0; i < v.Length; i++) v[i] /= total;
            for (int i = v.Length * Vector<float>.Count; i < sum.Length; i++) sum[i] /= samples;
            return sum;
        }

        void Fold(ClientUpdate update)
        {
            MultiplyAdd(sum, update.Weights, update.SampleCount);
            samples += update.SampleCount;
            Runtime.WeightBuffers.Return(update.Weights); // the next trainer result reuses it (ignored if not rented)
        }
    }

    /// <summary>acc += x · factor, vectorised.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first batch: no unoptimised tier
    public static void MultiplyAdd(Span<float> acc, ReadOnlySpan<float> x, float factor)
    {
        var accV = MemoryMarshal.Cast<float, Vector<float>>(acc);
        var xV = MemoryMarshal.Cast<float, Vector<float>>(x);
        var f = new Vector<float>(factor);
        for (int i = 0; i < accV.Length; i++) accV[i] += xV[i] * f;
        for (int i = accV.Length * Vector<float>.Count; i < acc.Length; i++) acc[i] += x[i] * factor;
    }

}
