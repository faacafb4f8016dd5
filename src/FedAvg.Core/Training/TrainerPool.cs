using System.Diagnostics;
using FedAvg.Core.Data;
using FedAvg.Core.Native;
using FedAvg.Core.Runtime;

namespace FedAvg.Core.Training;

/// <summary>
/// P dedicated threads, each owning one <see cref="LocalTrainer"/> (one module) with T libtorch intra-op threads.
/// Clients borrow a trainer for the length of one job, so memory holds P modules however many clients exist,
/// and training never runs on a thread pool that something else (such as an actor dispatcher) relies on.
/// </summary>
public sealed class TrainerPool : IDisposable
{
    // Training jobs run in (round, client id) order, the order FedAvg folds updates in: the server then holds a
    // handful of updates however the actor dispatcher happened to schedule the clients' requests. Other jobs
    // (evaluation) go first; equal keys keep their submission order.
    readonly PriorityQueue<Job, JobKey> queue = new(JobKey.Comparer);
    readonly object gate = new();
    bool completed;
    long submitted;
    readonly Thread[] threads;
    readonly string modelName;
    long busyTicks;

    public int Trainers { get; }
    public int ThreadsPerTrainer { get; }

    /// <summary>Total time trainer threads spent on jobs since the pool started.</summary>
    public TimeSpan BusyTime => TimeSpan.FromTicks(Interlocked.Read(ref busyTicks));

    public TrainerPool(string modelName, int trainers, int threadsPerTrainer)
    {
        Models.ModelZoo.Validate(modelName);
        Require.AtLeast(trainers, 1, "trainers");
        Require.AtLeast(threadsPerTrainer, 1, "threads-per-trainer");
        NativeTuning.RequireApplied("TrainerPool");
        this.modelName = modelName;
        Trainers = trainers;
        ThreadsPerTrainer = threadsPerTrainer;
        threads = Enumerable.Range(0, trainers).Select(i => new Thread(Work)
        {
            IsBackground = true,
            Name = $"fedavg-trainer-{i}",
        }).ToArray();
        foreach (var t in threads) t.Start();
    }

    /// <summary>The usual choice: as many one-thread trainers as cores (measured fastest here, see docs/benchmarks.md).</summary>
    public static (int Trainers, int Threads) DefaultShape(int cores) => (Math.Max(1, cores), 1);

    /// <summary>Threads of training (P × T) allowed per core: past one per core they only share the same cores.</summary>
    public const int MaxThreadsPerCore = 8;

    /// <summary>
    /// Refuses a shape of at least one trainer and one thread each whose P × T is more than
    /// <see cref="MaxThreadsPerCore"/> per core of this machine, naming the two options. Before, `--trainers 1000000`
    /// was taken: the process started threads and models until it held gigabytes, and no signal could stop it.
    /// </summary>
    public static void ValidateShape(int trainers, int threadsPerTrainer, int cores, string trainersOption, string threadsOption)
    {
        Require.AtLeast(trainers, 1, trainersOption);
        Require.AtLeast(threadsPerTrainer, 1, threadsOption);
        long asked = (long)trainers * threadsPerTrainer, allowed = (long)MaxThreadsPerCore * Math.Max(1, cores);
        if (asked > allowed)
            throw new UsageException($"{trainersOption} is {trainers} and {threadsOption} is {threadsPerTrainer}: that asks for {asked:N0} training threads; " +
                                     $"this machine has {cores} core(s), and at most {allowed} ({MaxThreadsPerCore} per core) are taken: more only share the same cores.");
    }

    /// <param name="order">Where the job queues: by (round, client id) ordinally; without one, ahead of all training.</param>
    public Task<TrainResult> Train(float[] globalWeights, LabeledImages data, int[] indices, TrainConfig config, int seed,
        TrainingOrder? order = null) =>
        Submit(trainer => trainer.Train(globalWeights, data, indices, config, seed), order);

    /// <summary>Evaluates on all trainers at once, each on a contiguous run of batches; bit-identical for any P.</summary>
    public async Task<Evaluation> Evaluate(float[] weights, LabeledImages data, int batchSize = Evaluator.DefaultBatch)
    {
        int batches = Evaluator.BatchCount(data.Count, batchSize);
        int parts = Math.Min(Trainers, batches);
        var jobs = new List<Task<PartialEvaluation>>(parts);
        for (int p = 0, first = 0; p < parts; p++)
        {
            int count = batches / parts + (p < batches % parts ? 1 : 0);
            int from = first;
            jobs.Add(Submit(trainer => Evaluator.EvaluateBatches(trainer.ModuleWith(weights), data, from, count, batchSize)));
            first += count;
        }
        return Evaluator.Combine(data.Count, await Task.WhenAll(jobs).ConfigureAwait(false));
    }

    public Task<T> Submit<T>(Func<LocalTrainer, T> work, TrainingOrder? order = null)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Enqueue(new Job(trainer =>
        {
            try
            {
                completion.SetResult(work(trainer));
            }
            catch (Exception e)
            {
                completion.SetException(e);
            }
        }), order);
        return completion.Task;
    }

    void Work()
    {
        NativeTuning.SetIntraOpThreads(ThreadsPerTrainer);
        // Built while the pool starts, not inside the first round: a model and its buffers are start-up work.
        var trainer = new LocalTrainer(modelName);
        try
        {
            while (TryTake(out var job))
            {
                long start = Stopwatch.GetTimestamp();
                job.Run(trainer);
                Interlocked.Add(ref busyTicks, Stopwatch.GetElapsedTime(start).Ticks);
            }
        }
        finally
        {
            trainer.Dispose();
        }
    }

    void Enqueue(Job job, TrainingOrder? order)
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(completed, this);
            queue.Enqueue(job, new JobKey(order, submitted++));
            Monitor.Pulse(gate);
        }
    }

    /// <summary>The next job; false once the pool is disposed and every queued job has run.</summary>
    bool TryTake(out Job job)
    {
        lock (gate)
        {
            while (queue.Count == 0 && !completed) Monitor.Wait(gate);
            return queue.TryDequeue(out job!, out _);
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            if (completed) return;
            completed = true;
            Monitor.PulseAll(gate);
        }
        foreach (var t in threads) t.Join();
    }

    sealed record Job(Action<LocalTrainer> Run);

    readonly record struct JobKey(TrainingOrder? Order, long Sequence)
    {
        public static readonly IComparer<JobKey> Comparer = Comparer<JobKey>.Create((a, b) =>
        {
            if (a.Order is { } x && b.Order is { } y)
            {
                int byRound = x.Round.CompareTo(y.Round);
                if (byRound != 0) return byRound;
                int byClient = string.CompareOrdinal(x.Client, y.Client);
                if (byClient != 0) return byClient;
            }
            else if (a.Order is not null || b.Order is not null)
                return a.Order is null ? -1 : 1;
            return a.Sequence.CompareTo(b.Sequence);
        });
    }
}

/// <summary>A training job's place in the pool's queue: by round, then client id (ordinal).</summary>
public readonly record struct TrainingOrder(int Round, string Client);
