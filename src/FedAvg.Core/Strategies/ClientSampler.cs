namespace FedAvg.Core.Strategies;

/// <summary>The clients of one round and how many of them must answer before it may close.</summary>
public sealed record ClientSample(IReadOnlyList<string> Clients, int MinimumUpdates);

/// <summary>
/// Chooses each round's clients, apart from how their updates are combined (Flower's <c>ClientManager.sample</c>
/// with the strategy's <c>num_fit_clients</c>). Must be deterministic in (round, available clients).
/// </summary>
public interface IClientSampler
{
    /// <summary>How many clients a round samples out of <paramref name="availableClients"/>.</summary>
    int SampleSize(int availableClients);

    /// <summary>The clients of <paramref name="round"/>, in ascending ordinal order; throws
    /// <see cref="InvalidOperationException"/> when too few are available to run it at all.</summary>
    ClientSample Sample(int round, IReadOnlyList<string> availableClients);
}

/// <summary>
/// FedAvg's sampling (McMahan et al. 2017): max(⌈C·K⌉, min-clients) of the K available clients, drawn by a
/// Fisher–Yates shuffle of the ordinally sorted ids seeded by (run seed, round) alone, so a resumed run samples what
/// the uninterrupted one would and the arrival order of registrations does not matter.
/// </summary>
public sealed class SeededFractionSampler : IClientSampler
{
    public double Fraction { get; }
    public int MinClients { get; }
    public int Seed { get; }

    public SeededFractionSampler(double fraction, int minClients, int seed)
    {
        Require.InRange(fraction, 0, 1, "fraction (C)");
        Require.AtLeast(minClients, 1, "min-clients");
        Fraction = fraction;
        MinClients = minClients;
        Seed = seed;
    }

    public int SampleSize(int availableClients) =>
        Math.Min(availableClients, Math.Max(MinClients, (int)Math.Ceiling(Fraction * availableClients - 1e-9)));

    public ClientSample Sample(int round, IReadOnlyList<string> availableClients)
    {
        int available = availableClients.Count;
        if (available < MinClients)
            throw new InvalidOperationException($"round {round}: {available} clients available, fewer than min-clients {MinClients}.");
        int wanted = SampleSize(available);
        var sorted = availableClients.Order(StringComparer.Ordinal).ToArray();
        var rng = new Random(Runtime.Seeds.Derive(Seed, round, Runtime.Seeds.ClientSampling));
        Partitioning.Partitioner.Shuffle<string>(sorted, rng);
        var chosen = sorted.Take(wanted).Order(StringComparer.Ordinal).ToArray();
        return new ClientSample(chosen, Math.Min(MinClients, wanted));
    }
}
