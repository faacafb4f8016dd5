using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

public class FedAvgMStrategyTests
{
    [Fact]
    public void Momentum_accumulates_the_pseudo_gradient_over_rounds()
    {
        var s = new FedAvgMStrategy(Options(), serverLearningRate: 1.0, serverMomentum: 0.5);
        // round 1: mean = (1·[0,0] + 3·[0.5,1]) / 4 = [0.375, 0.75]; g = w − mean = [0.625, 1.25]; v = g; w ← w − v = mean
        var w1 = Round(s, 1, [1f, 2f], U("a", 1, 0, 0), U("b", 3, 0.5f, 1));
        Assert.Equal([0.375f, 0.75f], w1);
        // round 2: mean = [0.125, 0.25]; g = [0.25, 0.5]; v = 0.5·[0.625, 1.25] + g = [0.5625, 1.125]; w ← w1 − v
        var w2 = Round(s, 2, w1, U("a", 1, 0.125f, 0.25f), U("b", 3, 0.125f, 0.25f));
        Assert.Equal([-0.1875f, -0.375f], w2);
    }

    [Fact]
    public void Without_momentum_it_is_sgd_on_the_pseudo_gradient_and_keeps_no_state()
    {
        // w − 0.5·(w − mean) with mean = [0.375, 0.75]: [1 − 0.3125, 2 − 0.625]
        var s = new FedAvgMStrategy(Options(), serverLearningRate: 0.5, serverMomentum: 0);
        Assert.Equal([0.6875f, 1.375f], Round(s, 1, [1f, 2f], U("a", 1, 0, 0), U("b", 3, 0.5f, 1)));
        Assert.Empty(s.SaveState());
    }

    [Theory]
    [InlineData(1.0, 1.0, "server-momentum")]
    [InlineData(1.0, -0.1, "server-momentum")]
    [InlineData(0.0, 0.9, "server-lr")]
    public void Impossible_settings_are_refused_naming_the_key(double lr, double momentum, string key)
    {
        Assert.Contains($"fedavg.strategy.{key}", Assert.Throws<UsageException>(() => new FedAvgMStrategy(Options(), lr, momentum)).Message);
    }
}
