package broker

// queue is a session's bounded FIFO of deliveries waiting to be sent. It is
// a ring buffer allocated on first use and grown by doubling up to the
// count bound, so an idle session costs nothing. Not safe for concurrent
// use: the session's mutex guards it.
type queue struct {
	buf   []delivery
	head  int // index of the oldest element
	n     int // number of elements
	bytes int64
	qos0  int // number of QoS 0 elements
}

func (q *queue) len() int { return q.n }

func (q *queue) push(d delivery) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = d
	q.n++
	q.bytes += d.msg.size()
	if d.qos == 0 {
		q.qos0++
	}
}

func (q *queue) grow() {
	size := 2 * len(q.buf)
	if size == 0 {
		size = 8
	}
	nb := make([]delivery, size)
	for i := 0; i < q.n; i++ {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

func (q *queue) peek() *delivery { return &q.buf[q.head] }

func (q *queue) pop() delivery {
	d := q.buf[q.head]
	q.buf[q.head] = delivery{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	q.bytes -= d.msg.size()
	if d.qos == 0 {
		q.qos0--
	}
	if q.n == 0 {
		q.head = 0
		if len(q.buf) > 64 {
			q.buf = nil // release a large idle buffer
		}
	}
	return d
}

// removeAt removes the i-th oldest element (0 = head).
func (q *queue) removeAt(i int) delivery {
	idx := (q.head + i) % len(q.buf)
	d := q.buf[idx]
	for j := i; j > 0; j-- {
		q.buf[(q.head+j)%len(q.buf)] = q.buf[(q.head+j-1)%len(q.buf)]
	}
	q.buf[q.head] = delivery{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	q.bytes -= d.msg.size()
	if d.qos == 0 {
		q.qos0--
	}
	return d
}

// at returns the i-th oldest element.
func (q *queue) at(i int) *delivery { return &q.buf[(q.head+i)%len(q.buf)] }

// oldestQoS0 returns the index of the oldest QoS 0 delivery, or -1.
func (q *queue) oldestQoS0() int {
	if q.qos0 == 0 {
		return -1
	}
	for i := 0; i < q.n; i++ {
		if q.at(i).qos == 0 {
			return i
		}
	}
	return -1
}

// drain removes and returns every element.
func (q *queue) drain() []delivery {
	out := make([]delivery, 0, q.n)
	for q.n > 0 {
		out = append(out, q.pop())
	}
	return out
}
