using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

public class FedProxStrategyTests
{
    [Fact]
    public void The_round_config_carries_mu_and_the_rest_of_the_common_config()
    {
        var plan = new FedProxStrategy(Options(), mu: 0.01).ConfigureRound(1, Ids(3));
        Assert.Equal(0.01, plan.Config[RoundConfig.ProximalMu]);
        Assert.Equal(new Training.TrainConfig(1, 10, 0.1, ProximalMu: 0.01), plan.Config.ToTrainConfig());
    }

    [Fact]
    public void Aggregation_is_FedAvgs_sample_weighted_mean_bit_for_bit()
    {
        // (1·[0,4,8] + 3·[4,0,-8]) / 4 = [3, 1, -4]
        Assert.Equal([3f, 1f, -4f], Round(new FedProxStrategy(Options(), 1.0), 1, new float[3], U("a", 1, 0, 4, 8), U("b", 3, 4, 0, -8)));
        var rng = new Random(3);
        var updates = Ids(6).Select(id => U(id, rng.Next(1, 100), Kit.Random(rng, 21))).ToArray();
        Assert.Equal(FedAvgStrategy.WeightedAverage(21, updates), Round(new FedProxStrategy(Options(), 0.1), 1, new float[21], updates));
    }

    [Fact]
    public void A_negative_mu_is_refused_and_mu_has_no_default()
    {
        Assert.Contains("fedavg.strategy.mu", Assert.Throws<UsageException>(() => new FedProxStrategy(Options(), -0.1)).Message);
        var missing = Assert.Throws<UsageException>(() => StrategyRegistry.Create("fedprox", new Dictionary<string, string>(), Options()));
        Assert.Contains("fedavg.strategy.mu is required", missing.Message);
    }
}
