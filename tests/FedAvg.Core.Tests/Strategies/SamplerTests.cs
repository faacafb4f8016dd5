using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Core.Tests.Strategies;

public class SamplerTests
{
    /// <summary>FedAvgStrategy.ConfigureRound's sampling as it was before the sampler was split out (commit c1232c7), verbatim.</summary>
    static (string[] Chosen, int Minimum) Before(double fraction, int minClients, int seed, int round, IReadOnlyList<string> availableClients)
    {
        int available = availableClients.Count;
        int wanted = Math.Max(minClients, (int)Math.Ceiling(fraction * available - 1e-9));
        wanted = Math.Min(wanted, available);
        var sorted = availableClients.Order(StringComparer.Ordinal).ToArray();
        var rng = new Random(Runtime.Seeds.Derive(seed, round, Runtime.Seeds.ClientSampling));
        for (int i = sorted.Length - 1; i > 0; i--) // Partitioner.Shuffle, which is internal
        {
            int j = rng.Next(i + 1);
            (sorted[i], sorted[j]) = (sorted[j], sorted[i]);
        }
        var chosen = sorted.Take(wanted).Order(StringComparer.Ordinal).ToArray();
        return (chosen, Math.Min(minClients, wanted));
    }

    [Fact]
    public void The_seeded_sampler_and_FedAvg_sample_exactly_what_FedAvg_sampled_before()
    {
        var clients = Enumerable.Range(0, 37).Select(i => $"client-{i:D3}").Reverse().ToList();
        foreach (var (c, min) in new[] { (0.1, 1), (0.3, 2), (0.5, 10), (1.0, 1), (0.05, 3) })
            foreach (var seed in new[] { 1, 2, 42 })
                for (int round = 1; round <= 20; round++)
                {
                    var (chosen, minimum) = Before(c, min, seed, round, clients);
                    var sample = new SeededFractionSampler(c, min, seed).Sample(round, clients);
                    Assert.Equal(chosen, sample.Clients);
                    Assert.Equal(minimum, sample.MinimumUpdates);
                    var plan = new FedAvgStrategy(new FedAvgOptions(c, min, new TrainConfig(1, 10, 0.1), seed)).ConfigureRound(round, clients);
                    Assert.Equal(chosen, plan.Clients);
                    Assert.Equal(minimum, plan.MinimumUpdates);
                    Assert.Equal(new TrainConfig(1, 10, 0.1), plan.Config.ToTrainConfig());
                }
    }

    [Fact]
    public void Sample_size_is_ceil_c_k_at_least_the_minimum_at_most_all_and_too_few_clients_are_refused()
    {
        var sampler = new SeededFractionSampler(0.1, 3, 1);
        Assert.Equal(10, sampler.SampleSize(100));
        Assert.Equal(3, sampler.SampleSize(20)); // ⌈2⌉ < min
        Assert.Equal(4, sampler.SampleSize(31)); // ⌈3.1⌉
        Assert.Equal(10, new SeededFractionSampler(0.1, 1, 1).SampleSize(100)); // 0.1·100 is not rounded up to 11
        Assert.Throws<InvalidOperationException>(() => sampler.Sample(1, ["a", "b"]));
    }

    [Fact]
    public void A_robust_rule_raises_the_rounds_minimum_to_what_it_needs()
    {
        var clients = Kit.Ids(10);
        Assert.Equal(1, new FedAvgStrategy(Kit.Options()).ConfigureRound(1, clients).MinimumUpdates);
        Assert.Equal(5, new KrumStrategy(Kit.Options(), f: 1).ConfigureRound(1, clients).MinimumUpdates); // 2f + 3
        Assert.Equal(7, new BulyanStrategy(Kit.Options(), f: 1).ConfigureRound(1, clients).MinimumUpdates); // 4f + 3
        Assert.Equal(7, new MultiKrumStrategy(Kit.Options(), f: 1, m: 6).ConfigureRound(1, clients).MinimumUpdates); // m + f
    }
}
