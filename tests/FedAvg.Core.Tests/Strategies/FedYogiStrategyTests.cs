using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

public class FedYogiStrategyTests
{
    [Fact]
    public void Yogi_moves_v_towards_delta_squared_by_the_sign_and_does_not_decay_it_when_delta_is_zero()
    {
        var s = new FedYogiStrategy(Options(), eta: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-9);
        // round 1: Δ = 0.5, v = 0 − 0.01·0.25·sign(0 − 0.25) = 0.0025, m = 0.05 → w = 1 + 0.1·0.05/0.05 = 1.1
        var w1 = Round(s, 1, [1f, 1f], U("a", 4, 1.5f, 1.5f));
        Close([1.1, 1.1], w1);
        // round 2: Δ = 0 → v stays 0.0025 (Adam's would decay to 0.002475), m = 0.045 → w = 1.1 + 0.1·0.045/0.05 = 1.19
        var w2 = Round(s, 2, w1, U("a", 4, w1));
        Close([1.19, 1.19], w2);
        // round 3: Δ = 0.01, Δ² = 1e-4 < v → v = 0.0025 − 0.01·1e-4 = 0.002499; m = 0.0405 + 0.001 = 0.0415
        var w3 = Round(s, 3, w2, U("a", 4, w2[0] + 0.01f, w2[1] + 0.01f));
        double step = 0.1 * 0.0415 / Math.Sqrt(0.002499);
        Close([1.19 + step, 1.19 + step], w3, 2e-6);
    }

    [Fact]
    public void Flowers_defaults_and_eta_l_in_the_round_config()
    {
        var s = new FedYogiStrategy(Options());
        Assert.Equal((1e-2, 0.0316, 0.9, 0.99, 1e-3), (s.Eta, s.EtaL, s.Beta1, s.Beta2, s.Tau));
        Assert.Equal(0.0316, s.ConfigureRound(1, Ids(2)).Config[RoundConfig.LearningRate]);
        Assert.Contains("fedavg.strategy.tau", Assert.Throws<UsageException>(() => new FedYogiStrategy(Options(), tau: -1)).Message);
    }
}
