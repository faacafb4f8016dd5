using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

public class FedAdagradStrategyTests
{
    [Fact]
    public void Adagrad_adds_delta_squared_to_v_and_with_flowers_beta1_0_m_is_delta()
    {
        var s = new FedAdagradStrategy(Options(), eta: 0.1, tau: 1e-9);
        // round 1: Δ = 0.5: m = 0.5, v = 0.25 → w = 1 + 0.1·0.5/0.5 = 1.1
        var w1 = Round(s, 1, [1f], U("a", 1, 1.5f));
        Close([1.1], w1);
        // round 2: Δ = 0.3: m = 0.3, v = 0.25 + 0.09 = 0.34 → w = 1.1 + 0.03/√0.34
        var w2 = Round(s, 2, w1, U("a", 1, w1[0] + 0.3f));
        Close([1.1 + 0.03 / Math.Sqrt(0.34)], w2, 2e-6);
    }

    [Fact]
    public void Adagrad_takes_no_beta2_and_refuses_a_zero_tau()
    {
        var e = Assert.Throws<UsageException>(() =>
            StrategyRegistry.Create("fedadagrad", new Dictionary<string, string> { ["beta2"] = "0.9" }, Options()));
        Assert.Contains("eta, eta-l, beta1, tau", e.Message);
        Assert.Contains("fedavg.strategy.tau", Assert.Throws<UsageException>(() => new FedAdagradStrategy(Options(), tau: 0)).Message);
    }
}
